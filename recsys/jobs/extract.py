"""The ``avrec features`` job: a media catalog -> a features folder (media blocks, fused matrix, words).

Media extraction runs locally (:func:`features.store.extract_catalog`, worker processes) or in Spark
tasks (:func:`recsys.spark.extract_catalog_spark`); then the catalog's text columns become the
``text`` block and ``text/`` state (:func:`recsys.jobs.text.add_text_features`).
:func:`check_extract` runs first: the catalog path, the output folder and every number are checked
before a file is read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.errors import ConfigError
from recsys.jobs import checks

if TYPE_CHECKING:
    from recsys.data import Catalog

#: ``--fusion`` methods (features.fusion.FUSION_METHODS, named here so a check imports no numpy)
FUSION_METHODS = ("concat", "weighted", "pca")


def check_extract(catalog: Any, out: str | Path, *, workers: int | None = None, fps: float = 1.0,
                  max_frames: int = 16, frame_size: int = 112, fusion: str = "concat",
                  fusion_weights: dict[str, float] | None = None, fusion_dim: int | None = None,
                  text_dim: int = 128, text_model: str | Path | None = None, engine: str = "local") -> None:
    """Every check of ``avrec features``, before the catalog is read or a file decoded.

    ``catalog`` may be a :class:`~recsys.data.Catalog` (not checked) or a path.

    Raises
    ------
    ConfigError
        A missing catalog; ``out`` a file; a number out of range (``--fps`` > 0, ``--max-frames``
        >= 1, ``--frame-size`` >= 16, ``--workers``/``--text-dim``/``--fusion-dim`` >= 1); fusion
        options that do not fit the method; a missing ``--text-model`` folder; an unknown engine.
    """
    from recsys.data import Catalog

    if not isinstance(catalog, Catalog):
        checks.catalog_path(catalog)
    checks.output_dir(out, "--out", what="features folder")
    checks.at_least(workers, "--workers", 1)
    checks.positive(fps, "--fps", none_ok=False)
    checks.at_least(max_frames, "--max-frames", 1, none_ok=False)
    checks.at_least(frame_size, "--frame-size", 16, none_ok=False)
    checks.one_of(fusion, "--fusion", FUSION_METHODS)
    if fusion == "weighted" and not fusion_weights:
        raise ConfigError("--fusion weighted needs --fusion-weights NAME=W,... (e.g. audio=1,video=0.5)")
    if fusion_weights and fusion == "concat":
        raise ConfigError("--fusion-weights applies to --fusion weighted or pca; --fusion concat weighs every "
                          "block alike")
    if fusion_dim is not None and fusion != "pca":
        raise ConfigError(f"--fusion-dim applies to --fusion pca only (--fusion is {fusion})")
    checks.at_least(fusion_dim, "--fusion-dim", 1)
    checks.at_least(text_dim, "--text-dim", 1, none_ok=False)
    if text_model is not None:
        checks.input_dir(text_model, "--text-model", "sentence-transformers model folder")
    checks.one_of(engine, "--engine", ("local", "spark"))


def parse_fusion_weights(text: str) -> dict[str, float]:
    """``"audio=1,video=0.5"`` -> ``{"audio": 1.0, "video": 0.5}``; ConfigError naming ``--fusion-weights``."""
    out: dict[str, float] = {}
    for pair in (p for p in text.split(",") if p.strip()):
        name, eq, value = pair.partition("=")
        try:
            if not eq or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--fusion-weights expects name=weight,... (e.g. audio=1,video=0.5); "
                              f"got {text!r}") from None
        checks.at_least(out[name.strip()], f"--fusion-weights {name.strip()}", 0.0)
    if not out:
        raise ConfigError(f"--fusion-weights expects name=weight,... (e.g. audio=1,video=0.5); got {text!r}")
    return out


def read_catalog(path: str | Path) -> Catalog:
    """A :class:`~recsys.data.Catalog` from a catalog CSV (``item_id,path,...``) or a folder to scan.

    Raises
    ------
    ConfigError
        ``path`` does not exist.
    """
    from recsys.data import Catalog

    p = checks.catalog_path(path)
    return Catalog.from_csv(p) if p.is_file() else Catalog.scan(p)


def extract_features(
    catalog: Catalog | str | Path,
    out: str | Path,
    config: Any = None,
    fusion: Any = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    retry_failed: bool = False,
    engine: str = "local",
    spark_master: str = "local[*]",
    text: bool = True,
    text_columns: Sequence[str] | None = None,
    text_model: str | Path | None = None,
    text_dim: int = 128,
    log: Callable[[str], None] = print,
):
    """Extract the media features of a catalog into ``out``, then add its words.

    Parameters
    ----------
    catalog : Catalog or path
        A catalog, or its CSV (``item_id,path[,audio_path]`` + metadata) or a folder of media files
        (:func:`read_catalog`).
    out : path
        Features folder (``<block>.npy``, ``fused.npy``, ``items.parquet``, ``fusion.json``,
        ``report.json``, ``text/``); a run resumes from its ``cache/``.
    config : features.extract.ExtractorConfig, optional
        Extractor settings (default ``ExtractorConfig()``).
    fusion : features.fusion.FusionConfig, optional
        How blocks are fused (default concat).
    workers : int, optional
        Local processes (default: cores); ignored by Spark.
    progress : bool
        Show a progress bar (local engine).
    retry_failed : bool
        Retry files that failed in an earlier run.
    engine : {"local", "spark"}
    spark_master : str
    text : bool
        Add the catalog's text columns (False: ``--no-text``; a previous run's ``text/`` is removed
        either way, so words never outlive a run without them).
    text_columns : sequence of str, optional
        Text columns; None: ``title,tags,description`` where present (naming them makes a missing
        column an error).
    text_model : path, optional
        Local sentence-transformers model folder (default lexical TF-IDF).
    text_dim : int
        Size of the lexical text block.
    log : callable
        Receives the extraction summary and the text line.

    Returns
    -------
    features.store.ExtractReport
        Counts and failures; ``exit_code()`` is the command's exit status.

    Raises
    ------
    ConfigError
        What :func:`check_extract` refuses, before the catalog is read.
    """
    from features.extract import ExtractorConfig
    from features.fusion import FusionConfig
    from recsys.jobs.text import add_text_features, remove_text_features

    from recsys.data import Catalog

    check_extract(catalog, out, workers=workers, text_dim=text_dim, text_model=text_model, engine=engine)
    cat = catalog if isinstance(catalog, Catalog) else read_catalog(catalog)
    config = config or ExtractorConfig()
    fusion = fusion or FusionConfig()
    if engine == "spark":
        from recsys.spark import extract_catalog_spark

        report = extract_catalog_spark(cat, out, config=config, master=spark_master, fusion=fusion,
                                       retry_failed=retry_failed)
    elif engine == "local":
        from features.store import extract_catalog

        report = extract_catalog(cat, out, config=config, workers=workers, progress=progress, fusion=fusion,
                                 retry_failed=retry_failed)
    else:
        raise ConfigError(f"engine must be local or spark, got {engine!r}")
    log(report.summary())
    remove_text_features(out)  # a previous run's words must not outlive a --no-text run
    if text and report.n_ok:
        from features.catalog_text import DEFAULT_TEXT_COLUMNS

        cols = list(text_columns) if text_columns else None
        prov = add_text_features(out, cat, cols or DEFAULT_TEXT_COLUMNS, model_dir=text_model, dim=text_dim,
                                 required=cols is not None)
        if prov is None:
            log("text: none (no text columns with words in the catalog)")
        else:
            proj = prov["projection"]
            log(f"text: {prov['n_with_text']}/{report.n_items} items with text from {prov['columns']}, "
                f"{prov['encoder']} encoder, {prov['dim']} dims; media -> text projection "
                + (f"trained on {proj['n_train']} items" if proj else "not trained (too few items with text and media)"))
    return report
