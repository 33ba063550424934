"""Feature extraction over a media catalog with Spark: :func:`extract_catalog_spark`.

Spark only replaces the executor of :func:`features.store.extract_catalog`; everything else is
the store's own code, so a Spark run and a local run write the same files and share one cache:

1. The driver hashes every file (the store's ``hashes.json`` index: unchanged files are not
   re-read) and looks each content hash up in ``OUT/cache/<config key>/``.
2. The files not cached yet go to Spark as rows (content hash, path, audio path), one partition per
   few files; ``mapInPandas`` runs, per file, the store's per-file step: the same extractor
   (``features.extract.extract_file`` by default) with ``config.torch_threads`` BLAS/OpenMP/torch
   threads, writing the finished entry (``<sha1>.npz``) or the decode failure
   (``<sha1>.failed.json``) into the shared cache with atomic renames.
3. The driver then runs ``extract_catalog`` itself, which finds every file cached and only
   assembles ``items.parquet``, the block arrays, ``fused.npy`` and the fusion statistics.

So ``OUT`` must be on a file system the driver and every executor see at the same path (NFS,
a mounted bucket), and so must the media files. A file that crashes a Python worker (a segfault
in a decoder) fails its Spark job; the files that were in flight are then re-run one per job, the
one that crashes again is recorded as failed with the store's reason, and the batch goes on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from features.fusion import FusionConfig
from recsys.errors import ConfigError, DataError
from recsys.spark.session import DEFAULT_MASTER, resolve_session

_SCHEMA = "content_hash string, ok boolean, reason string, duration_s double, config_error string"


def extract_catalog_spark(
    catalog,
    out_dir: str | Path,
    config: Any = None,
    master: str = DEFAULT_MASTER,
    extract_fn: Callable | None = None,
    fusion: FusionConfig | None = FusionConfig(),
    *,
    retry_failed: bool = False,
    partitions: int | None = None,
    spark=None,
):
    """Extract features of every catalog item into ``out_dir`` with Spark tasks.

    Same outputs, cache layout and failure manifest as :func:`features.store.extract_catalog`
    (see that module's docstring for the folder layout); only the per-file work runs in Spark.

    Parameters
    ----------
    catalog : Catalog
        Items and media paths (readable by every executor); output rows follow its order.
    out_dir : path
        Output folder on a file system shared by the driver and the executors.
    config : features.extract.ExtractorConfig, optional
        Default ``ExtractorConfig()``; keep ``torch_threads=1`` when Spark runs one task per core.
    master : str
        Spark master URL (ignored when ``spark`` is given).
    extract_fn : callable, optional
        ``extract_fn(path, config, audio_path=None) -> FileFeatures``; default
        ``features.extract.extract_file``. Shipped to executors with cloudpickle (its module must
        be importable there).
    fusion : FusionConfig or None
        How to build ``fused.npy`` (None: no fused matrix).
    retry_failed : bool
        Re-try files whose failure is cached.
    partitions : int, optional
        Spark partitions of the files to extract; default one per file up to 4 per core of the
        session (small partitions balance files of unequal length).
    spark : SparkSession, optional

    Returns
    -------
    features.store.ExtractionReport
        As the local one, with ``executor="spark"``, ``workers`` = partitions, ``n_cached`` =
        rows that were cached before this call.

    Raises
    ------
    DataError
        Empty catalog.
    ConfigError
        The extractor rejected its settings (bad backbone, weights, device) in a task.
    """
    from features import store

    t0 = time.perf_counter()
    if len(catalog) == 0:
        raise DataError("the catalog has no items; nothing to extract")
    # the cache key exactly as extract_catalog builds it, so both engines share entries
    extract_fn, config, config_key, use_default = store.resolve_extractor(extract_fn, config)
    out = Path(out_dir)
    cache_root = out / store.CACHE_DIR
    cache_dir = cache_root / config_key
    cache_dir.mkdir(parents=True, exist_ok=True)
    store.clean_stale(cache_dir)

    # 1. content hashes on the driver (saved to hashes.json: the assembly below does not re-read)
    index = store.HashIndex(cache_root / store.HASH_INDEX)
    first_row: dict[str, tuple[str, str | None]] = {}
    n_rows_of: dict[str, int] = {}
    for path, audio_path in zip(catalog.paths, catalog.audio_paths):
        try:
            h = store.hash_content(index, Path(path), None if audio_path is None else Path(audio_path))
        except OSError:
            continue  # extract_catalog records unreadable paths itself
        first_row.setdefault(h, (str(path), None if audio_path is None else str(audio_path)))
        n_rows_of[h] = n_rows_of.get(h, 0) + 1
    index.save()

    # 2. what is not cached yet (unique content once)
    todo = [
        store.Task(h, p, a) for h, (p, a) in first_row.items()
        if store.read_cached(cache_dir, h, retry_failed) is None
    ]
    todo_hashes = {t.content_hash for t in todo}
    n_cached_before = sum(n for h, n in n_rows_of.items() if h not in todo_hashes)  # as extract_catalog counts

    # 3. the Spark job(s)
    n_parts = 0
    durations: dict[str, float] = {}
    if todo:
        spark = resolve_session(spark, master)
        n_parts = partitions or min(len(todo), 4 * spark.sparkContext.defaultParallelism)
        durations = _run_spark(spark, todo, n_parts, extract_fn, config, cache_dir, config_key, use_default)

    # 4. assembly: every file is cached now, so this only reads the cache and writes the outputs
    report = store.extract_catalog(
        catalog, out, config, workers=1, progress=False, extract_fn=extract_fn if not use_default else None,
        fusion=fusion, retry_failed=False,
    )
    report.n_cached = n_cached_before
    report.executor = "spark" if todo else "none"
    report.workers = n_parts
    report.video_seconds = float(sum(durations.values()))
    report.seconds = time.perf_counter() - t0
    store.atomic_write_text(out / store.REPORT_JSON, json.dumps(report.to_dict(), indent=2, default=str))
    return report


def _run_spark(spark, todo, n_parts, extract_fn, config, cache_dir: Path, config_key: str, use_default: bool):
    """Extract ``todo`` in Spark; isolate files that crash a worker. Returns {hash: duration} of ok files."""
    from features import store

    durations: dict[str, float] = {}
    pending = list(todo)
    while pending:
        try:
            durations.update(_job(spark, pending, n_parts, extract_fn, config, cache_dir, config_key, use_default))
            return durations
        except ConfigError:
            raise
        except Exception as e:  # a Python worker died: Spark failed the job
            # Files with a cache entry finished before the crash; the in-flight markers name the
            # suspects, each re-run alone: the one that crashes again is the culprit.
            suspects = store.take_in_flight(cache_dir, pending)
            if not suspects:
                raise RuntimeError(
                    f"the Spark feature job failed before extracting any file: {str(e).splitlines()[0]}"
                ) from e
            for t in suspects:
                try:
                    durations.update(_job(spark, [t], 1, extract_fn, config, cache_dir, config_key, use_default))
                except ConfigError:
                    raise
                except Exception:
                    store.record_crash(cache_dir, t, config_key)
            done = {t.content_hash for t in suspects}
            pending = [
                t for t in pending
                if t.content_hash not in done and store.read_cached(cache_dir, t.content_hash, False) is None
            ]
            n_parts = max(1, min(n_parts, len(pending)))
    return durations


def _job(spark, tasks, n_parts, extract_fn, config, cache_dir: Path, config_key: str, use_default: bool):
    import pyarrow as pa

    table = pa.table({
        "content_hash": pa.array([t.content_hash for t in tasks], pa.string()),
        "path": pa.array([t.path for t in tasks], pa.string()),
        "audio_path": pa.array([t.audio_path for t in tasks], pa.string()),
    })
    # one file per row: the default batch of 10,000 rows would put a whole partition in one batch
    df = spark.createDataFrame(table).repartition(n_parts)
    rows = df.mapInPandas(
        _extract_task(extract_fn, config, str(cache_dir), config_key, use_default), _SCHEMA
    ).collect()
    bad_config = [r["config_error"] for r in rows if r["config_error"]]
    if bad_config:
        raise ConfigError(f"feature extraction settings rejected by the extractor: {bad_config[0]}")
    return {r["content_hash"]: float(r["duration_s"] or 0.0) for r in rows if r["ok"]}


def _extract_task(extract_fn, config, cache_dir: str, config_key: str, use_default: bool):
    """The function each task runs: rows of files in, one status row per file out."""

    def run(batches):
        import pandas as pd

        from features import store

        threads = store.extractor_threads(config)
        if use_default and getattr(config, "cnn", False):
            from features.video import set_torch_threads

            set_torch_threads(threads)  # one task per core: more torch threads only contend
        for pdf in batches:
            out = []
            for h, path, audio in zip(pdf["content_hash"], pdf["path"], pdf["audio_path"]):
                task = store.Task(h, path, None if audio is None or pd.isna(audio) else audio)
                try:
                    res = store.run_one(task, extract_fn, config, cache_dir, config_key)
                except ConfigError as e:  # bad settings fail every file: report, the driver stops
                    out.append((h, False, None, None, str(e)))
                    break
                out.append((h, res.ok, res.reason, res.duration_s, None))
            yield pd.DataFrame(out, columns=["content_hash", "ok", "reason", "duration_s", "config_error"])

    return run
