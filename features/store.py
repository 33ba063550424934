"""Cached, resumable feature extraction over a media catalog: :func:`extract_catalog`.

Output folder (the :class:`~recsys.data.ItemFeatures` layout, readable with ``ItemFeatures.load``)::

    DIR/items.parquet      item_id, has_audio, has_video, path, audio_path, duration_s,
                           status ("ok" | "failed"), error (reason or null), content_hash
    DIR/<block>.npy        (n_items, d) float32 per block (audio, video_cnn, video_desc);
                           rows of items without the modality are zero AND flagged by has_<modality>
    DIR/fused.npy          (n_items, D) float32, see features.fusion (absent when nothing succeeded)
    DIR/features.json      blocks, dims, masks, provenance (extractor config + key, fusion, counts)
    DIR/fusion.json, DIR/fusion.npz   fitted fusion statistics (Fusion.load) to fuse new items later
    DIR/report.json        the ExtractionReport of the last run (features.report)
    DIR/cache/...          the feature cache (features.cache): one entry per file content

Rows follow the catalog order; failed items keep their row (every mask False, status "failed").

The job: (1) hash every file (:mod:`features.cache`); (2) look each content up in the cache, so
identical files are extracted once and a re-run skips every cached file; (3) extract the rest with
an executor (:mod:`features.executors`: in-process, threads or processes; a crashing decoder only
costs its file with processes); (4) assemble the rows in catalog order, fuse, and write the folder.

**Resume.** Every finished file is in the cache before the next starts, so a killed run loses at
most the files in flight; re-running the same command picks up from there. Decode failures
(:class:`~recsys.errors.MediaDecodeError`) and worker crashes on a file are cached as failed and
not retried unless ``retry_failed=True``; unexpected exceptions (extractor bugs) are reported but
not cached. A :class:`~recsys.errors.ConfigError` from the extractor (bad backbone, weights, device)
stops the run: it is not a property of one file. Finished files stay cached.
One run per output folder at a time.

**Other engines.** Another engine (:mod:`recsys.spark.features`) can run the files elsewhere and
share the cache: :func:`~features.cache.resolve_extractor` (extractor, config and cache key),
:class:`~features.cache.HashIndex` / :func:`~features.cache.hash_content`,
:class:`~features.cache.Task`, :func:`~features.executors.run_one` (extract one file into the cache
under its in-flight marker), :func:`~features.cache.read_cached`,
:func:`~features.cache.take_in_flight` and :func:`~features.cache.record_crash`,
:func:`~features.cache.clean_stale`, :func:`~features.executors.extractor_threads` and
:func:`~features.cache.atomic_write_text`. :func:`extract_catalog` then finds every file cached and
only assembles the outputs. Those names are also importable from this module, where that engine
reads them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from features.cache import (
    CACHE_DIR,
    HASH_INDEX,
    FileResult,
    HashIndex,
    Task,
    atomic_write_text,
    clean_stale,
    hash_content,
    read_cached,
    resolve_extractor,
)
from features.executors import (
    EXECUTORS,
    largest_first,
    plan,
    prepare_threads,
    run_one,
    run_processes,
    run_threads,
)
from features.fusion import Fusion, FusionConfig
from features.progress import progress_bar
from features.report import REPORT_JSON, ExtractionReport
from recsys.data.catalog import Catalog
from recsys.data.item_features import ItemFeatures
from recsys.errors import ConfigError, DataError

# The Spark engine (recsys/spark/features.py) reads these as ``store.<name>``, besides names above.
from features.cache import record_crash, take_in_flight
from features.executors import extractor_threads


def _modality_of_blocks(names: list[str], use_default: bool) -> dict[str, str]:
    """Block -> modality mask name (features.extract.BLOCKS; else the name's prefix)."""
    table: dict[str, str] = {}
    if use_default:
        from features.extract import BLOCKS

        table.update(BLOCKS)
    return {b: table.get(b, b.split("_")[0]) for b in names}


def extract_catalog(
    catalog: Catalog,
    out_dir: str | Path,
    config: Any = None,
    workers: int | None = None,
    progress: bool = True,
    extract_fn: Callable | None = None,
    fusion: FusionConfig | None = FusionConfig(),
    *,
    retry_failed: bool = False,
    executor: str = "auto",
) -> ExtractionReport:
    """Extract features of every catalog item into ``out_dir`` (cached, resumable, parallel).

    Parameters
    ----------
    catalog : Catalog
        Items and media paths; output rows follow its order.
    out_dir : path
        Output folder (layout in the module docstring); created if needed.
    config : features.extract.ExtractorConfig, optional
        Extraction settings (default ``ExtractorConfig()``); ``config.key()`` names the cache.
    workers : int, optional
        Files extracted at a time. Default: the usable CPU cores (at most one per file to
        extract). 1 = one after another in this process (unless ``executor="processes"``).
    progress : bool
        Show a progress bar (stderr).
    extract_fn : callable, optional
        ``extract_fn(path, config, audio_path=None) -> FileFeatures``; default
        ``features.extract.extract_file``. Must be importable by name for worker processes, and
        safe to call from several threads at once for the thread executor (the default one is).
    fusion : FusionConfig or None
        How to build ``fused.npy`` (None: no fused matrix).
    retry_failed : bool
        Re-try files whose failure is cached.
    executor : {"auto", "threads", "processes"}
        How ``workers > 1`` files run at once (module docstring, *Parallelism*): ``"threads"`` in
        this process (no start-up cost, no crash isolation), ``"processes"`` in spawned workers
        (seconds of start-up each; a crashing decoder only costs its file). ``"auto"``: processes
        from :data:`PROCESS_MIN_FILES` files to extract on, or after a run in this folder died
        while extracting; threads otherwise.

    Returns
    -------
    ExtractionReport
        Counts, failures with reasons, timing; ``exit_code()`` and ``summary()`` for the CLI.
    """
    t0 = time.perf_counter()
    if len(catalog) == 0:
        raise DataError("the catalog has no items; nothing to extract")
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise ConfigError(f"workers must be an integer >= 1 (or None for one per core), got {workers!r}")
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(map(repr, EXECUTORS))}, got {executor!r}")
    extract_fn, config, config_key, use_default = resolve_extractor(extract_fn, config)

    out = Path(out_dir)
    cache_root = out / CACHE_DIR
    cache_dir = cache_root / config_key
    cache_dir.mkdir(parents=True, exist_ok=True)
    died_in_flight = clean_stale(cache_dir) > 0  # a previous run died while extracting

    # 1. content hashes (paths that cannot be read fail here, without a cache entry)
    index = HashIndex(cache_root / HASH_INDEX)
    hashes: list[str | None] = []
    row_reason: dict[int, str] = {}
    items = list(zip(catalog.item_ids.tolist(), catalog.paths, catalog.audio_paths))
    for row, (_, path, audio_path) in enumerate(items):
        try:
            hashes.append(hash_content(index, Path(path), None if audio_path is None else Path(audio_path)))
        except FileNotFoundError as e:
            hashes.append(None)
            row_reason[row] = f"file not found: {e.filename}"
        except OSError as e:
            hashes.append(None)
            row_reason[row] = f"cannot read file: {e.strerror or e}"
    index.save()

    # 2. cache look-up; unique content is extracted once
    rows_of: dict[str, list[int]] = {}
    for row, h in enumerate(hashes):
        if h is not None:
            rows_of.setdefault(h, []).append(row)
    results: dict[str, FileResult] = {}
    todo: list[Task] = []
    for h, rows in rows_of.items():
        hit = read_cached(cache_dir, h, retry_failed)
        if hit is not None:
            results[h] = hit
        else:
            _, path, audio_path = items[rows[0]]
            todo.append(Task(h, str(path), None if audio_path is None else str(audio_path)))

    # 3. extraction
    n_cached_rows = sum(len(rows_of[h]) for h in results) + len(row_reason)
    bar = progress_bar(len(items), n_cached_rows, progress)
    n_bad = [sum(len(rows_of[h]) for h, r in results.items() if not r.ok) + len(row_reason)]

    def on_done(res: FileResult) -> None:
        results[res.content_hash] = res
        k = len(rows_of[res.content_hash])
        if not res.ok:
            n_bad[0] += k
            bar.set_postfix(failed=n_bad[0], refresh=False)
        bar.update(k)

    how, n_workers = plan(len(todo), workers, executor, died_in_flight)
    todo = largest_first(todo)  # results are assembled in catalog order below
    try:
        if how == "in-process":
            for t in todo:
                on_done(run_one(t, extract_fn, config, str(cache_dir), config_key))
        elif how == "threads":
            prepare_threads(config, use_default)
            run_threads(todo, n_workers, extract_fn, config, cache_dir, config_key, on_done)
        elif how == "processes":
            run_processes(todo, n_workers, extract_fn, config, cache_dir, config_key, on_done)
    finally:
        bar.close()

    # 4. assemble rows in catalog order
    features, statuses, errors, durations = _assemble(
        catalog, hashes, row_reason, results, use_default, config, config_key
    )
    fitted = None
    if fusion is not None and any(s == "ok" for s in statuses):
        fitted = Fusion(fusion).fit(features)
        features = fitted.transform(features)

    extra = {
        "path": [str(p) for p in catalog.paths],
        "audio_path": [None if a is None else str(a) for a in catalog.audio_paths],
        "duration_s": durations,
        "status": statuses,
        "error": errors,
        "content_hash": hashes,
    }
    _remove_previous_outputs(out, keep=set(features.blocks))
    features.save(out, extra_columns=extra)
    if fitted is not None:
        fitted.save(out)

    computed = {t.content_hash for t in todo}
    failures = [
        (item_id, str(path), errors[row])
        for row, (item_id, path, _) in enumerate(items)
        if statuses[row] == "failed"
    ]
    report = ExtractionReport(
        out_dir=out,
        n_items=len(items),
        n_ok=sum(s == "ok" for s in statuses),
        n_failed=len(failures),
        n_cached=sum(1 for h in hashes if h is not None and h not in computed),
        failures=failures,
        video_seconds=float(  # each extracted content once, even when several rows share it
            sum(
                durations[rows_of[h][0]] or 0.0
                for h in computed
                if statuses[rows_of[h][0]] == "ok"
            )
        ),
        config_key=config_key,
        executor=how,
        workers=n_workers,
    )
    report.seconds = time.perf_counter() - t0
    atomic_write_text(out / REPORT_JSON, json.dumps(report.to_dict(), indent=2, default=str))
    return report


def _remove_previous_outputs(out: Path, keep: set[str]) -> None:
    """Delete a previous run's fusion and the block files it listed that this run does not write."""
    meta = out / "features.json"
    if meta.exists():
        try:
            old_blocks = json.loads(meta.read_text()).get("blocks", {})
        except (OSError, ValueError):
            old_blocks = {}
        for name in old_blocks:
            if name not in keep:
                (out / f"{name}.npy").unlink(missing_ok=True)
    for name in ("fused.npy", "fusion.json", "fusion.npz"):
        (out / name).unlink(missing_ok=True)


def _assemble(
    catalog: Catalog,
    hashes: list[str | None],
    row_reason: dict[int, str],
    results: dict[str, FileResult],
    use_default: bool,
    config: Any,
    config_key: str,
) -> tuple[ItemFeatures, list[str], list[str | None], list[float | None]]:
    n = len(catalog)
    # Block set and dims: what successful files returned, completed by the extractor's declared
    # dims when some modality was never seen (a catalog without audio still gets an audio block,
    # all rows flagged missing). block_dims imports torch, so it is asked only when needed.
    dims: dict[str, int] = {}
    seen = {"audio": False, "video": False}
    for r in results.values():
        if r.ok:
            seen["audio"] |= r.has_audio
            seen["video"] |= r.has_video
            for k, v in r.blocks.items():
                dims.setdefault(k, int(v.shape[0]))
    if use_default and not all(seen.values()):
        from features.extract import block_dims

        declared = {k: int(v) for k, v in block_dims(config).items()}
        dims = {**declared, **{k: v for k, v in dims.items() if k not in declared}}
    elif use_default:
        from features.extract import BLOCKS

        order = list(BLOCKS)  # keep the extractor's block order whatever file came first
        dims = dict(sorted(dims.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    modality = _modality_of_blocks(list(dims), use_default)
    modalities = sorted(set(modality.values()))

    blocks = {b: np.zeros((n, d), dtype=np.float32) for b, d in dims.items()}
    masks = {m: np.zeros(n, dtype=bool) for m in modalities}
    statuses: list[str] = ["failed"] * n
    errors: list[str | None] = [None] * n
    durations: list[float | None] = [None] * n
    for row in range(n):
        h = hashes[row]
        if h is None:
            errors[row] = row_reason[row]
            continue
        r = results.get(h)
        if r is None:  # cannot happen unless a worker vanished silently; keep the row explicit
            errors[row] = "no result (extraction did not finish)"
            continue
        if not r.ok:
            errors[row] = r.reason
            continue
        has = {"audio": r.has_audio, "video": r.has_video}
        for m in modalities:  # other modalities (custom extractors): present when all blocks are
            has.setdefault(m, all(b in r.blocks for b in dims if modality[b] == m))
        problem = None
        if not any(has[m] for m in modalities):
            problem = "the extractor found neither an audio nor a video stream"
        for b, d in dims.items():
            if problem:
                break
            present = has[modality[b]]
            if present and b not in r.blocks:
                problem = f"extractor output lacks block {b!r} although the file has {modality[b]}"
            elif present and r.blocks[b].shape[0] != d:
                problem = f"block {b!r} has dim {r.blocks[b].shape[0]}, other files have {d}"
        if problem:
            errors[row] = problem
            continue
        statuses[row] = "ok"
        durations[row] = r.duration_s
        for m in modalities:
            masks[m][row] = bool(has[m])
        for b in dims:
            if masks[modality[b]][row]:
                blocks[b][row] = r.blocks[b]
    to_dict = getattr(config, "to_dict", None)
    provenance = {
        "extractor": {
            "function": "features.extract.extract_file" if use_default else "custom",
            "config": to_dict() if callable(to_dict) else repr(config),
            "config_key": config_key,
        },
        "catalog": {
            "n_items": n,
            "n_ok": statuses.count("ok"),
            "n_failed": statuses.count("failed"),
        },
        "missing_rows": "zero in every block and flagged by has_<modality> = False",
    }
    if use_default:
        from features.extract import EXTRACTOR_VERSION

        provenance["extractor"]["version"] = EXTRACTOR_VERSION
    features = ItemFeatures(
        catalog.item_ids,
        blocks,
        masks,
        block_masks=modality,
        provenance=provenance,
    )
    return features, statuses, errors, durations

