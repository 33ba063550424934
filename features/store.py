"""Cached, resumable feature extraction over a media catalog: :func:`extract_catalog`.

Output folder (the :class:`~recsys.data.ItemFeatures` layout, readable with ``ItemFeatures.load``)::

    DIR/items.parquet      item_id, has_audio, has_video, path, audio_path, duration_s,
                           status ("ok" | "failed"), error (reason or null), content_hash
    DIR/<block>.npy        (n_items, d) float32 per block (audio, video_cnn, video_desc);
                           rows of items without the modality are zero AND flagged by has_<modality>
    DIR/fused.npy          (n_items, D) float32, see features.fusion (absent when nothing succeeded)
    DIR/features.json      blocks, dims, masks, provenance (extractor config + key, fusion, counts)
    DIR/fusion.json, DIR/fusion.npz   fitted fusion statistics (Fusion.load) to fuse new items later
    DIR/report.json        the ExtractionReport of the last run
    DIR/cache/hashes.json  path -> (size, mtime_ns, sha1): files unchanged since are not re-read
    DIR/cache/<key>/<sha1>.npz          one finished file: its blocks + JSON meta
    DIR/cache/<key>/<sha1>.failed.json  one known-bad file: the reason

Rows follow the catalog order; failed items keep their row (every mask False, status "failed").

**Cache key.** ``<key>`` is ``config.key()`` (which includes the extractor version), plus a short hash
of the function's qualified name when a custom ``extract_fn`` is used, so different extractors never
share entries. ``<sha1>`` is the SHA-1 of the file's full bytes, streamed in 1 MiB chunks (of
``sha1(video) + sha1(audio)`` when the item has a separate audio file). Full hashing costs one read
of each file (about 1 GB/s, far below decoding cost) and is exact; the ``hashes.json`` index keyed by
(resolved path, size, mtime_ns) makes re-runs skip even that. Identical files are extracted once.

**Resume.** Each finished file is written to a temporary name and ``os.replace``-d into place, so a
killed run leaves only complete entries (plus temporaries that the next run deletes). Re-running
the same command skips every cached file. Decode failures (:class:`~recsys.errors.MediaDecodeError`)
and worker crashes on a file are cached as ``.failed.json`` and not retried unless
``retry_failed=True``; unexpected exceptions (extractor bugs) are reported but not cached. A
:class:`~recsys.errors.ConfigError` from the extractor (bad backbone, weights, device) stops the run:
it is not a property of one file. Finished files stay cached.
One run per output folder at a time.

**Parallelism.** ``workers`` files are extracted at a time by one of two executors:

- ``"threads"``: a thread pool in this process. Decoding (OpenCV, PyAV), torch ops and most numpy
  work release the GIL, so two threads keep two cores busy (measured: 1.9x the files per second of
  one thread on 2 idle cores): while one file is decoded the CNN runs on another (decode and CNN
  cost about the same on real clips), or two CNN passes run side by side. Nothing is imported or
  built per worker, so it pays off from the second file. torch keeps ``config.torch_threads``
  intra-op threads per call, and BLAS/OpenMP pools are limited to that many for the whole run (a
  per-file limit would be undone by whichever thread finishes first). The kernel's autogroup
  scheduling gives each job an equal share of a busy machine whatever its thread count, so on
  cores other jobs keep busy the threads get about one thread's share. With the default extractor
  the CNN is built once, in the calling thread, before the pool starts: ``features.video`` caches
  models in a plain dict and seeds torch's global RNG while building one, which concurrent builds
  could interleave. Threads give bit-identical results to ``workers=1``. No crash isolation: a
  segfault in a decoder ends the whole run.
- ``"processes"``: spawned worker processes (``spawn`` context: torch and fork do not mix), each
  with ``config.torch_threads`` BLAS/OpenMP threads. Each pays the torch import and model build
  once (4-20 s on 2 shared cores) and, once started, runs no faster than a thread. But a worker
  that dies (a segfault in a decoder) only breaks the pool: the files that were in flight are
  re-run one per process to find the culprit, which is recorded as failed, and the batch goes
  on. ``extract_fn`` must be importable by name.

``executor="auto"`` (the default) uses processes when at least :data:`PROCESS_MIN_FILES` files are
to be extracted (the start-up is then a small share of the run, and a large catalog from
outside is where a crashing file is most likely), or when the previous run in this folder died
while extracting a file (its in-flight markers are still there: that file may crash again, and
processes isolate it); otherwise threads. ``workers=1`` runs the files one after another in this
process (its thread pools limited the same way while a file is extracted, then restored), except
with ``executor="processes"``, which always uses worker processes.

**Executor interface.** Another engine (:mod:`recsys.spark.features`) can run the files elsewhere
and share this cache: :func:`resolve_extractor` (extractor, config and cache key),
:class:`HashIndex` / :func:`hash_content` (the content hash of a file), :class:`Task` (one file to
do), :func:`run_one` (extract one file into the cache, with its in-flight marker
``<hash>`` + :data:`RUNNING_SUFFIX`), :func:`read_cached`, :func:`take_in_flight` (the suspects
of a crash) and :func:`record_crash` (a file that killed its worker alone), :func:`clean_stale`,
:func:`extractor_threads` and :func:`atomic_write_text`. :func:`extract_catalog` then finds every
file cached and only assembles the outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from features.fusion import Fusion, FusionConfig
from recsys.data.catalog import Catalog
from recsys.data.item_features import ItemFeatures
from recsys.errors import ConfigError, DataError, MediaDecodeError

CACHE_DIR = "cache"
HASH_INDEX = "hashes.json"
REPORT_JSON = "report.json"
_CHUNK = 1 << 20
#: ``executor="auto"`` uses worker processes from this many files to extract on (threads below).
#: Once started, threads scale like processes (2 threads: 1.9x one on 2 idle cores), so processes
#: only buy crash isolation, at 4-20 s of torch import and model build per worker (2 shared
#: cores) before the first file. A file costs 0.1-0.5 s of one core (demo clips to real clips):
#: from here on that start-up is a small share of the run, and a large catalog of outside files
#: is where a crashing decoder is most likely.
PROCESS_MIN_FILES = 1000
EXECUTORS = ("auto", "threads", "processes")
_TMP_MARK = ".tmp-"
RUNNING_SUFFIX = ".running"
_FAILED = ".failed.json"
CRASH_REASON = "the worker process died while extracting this file (a crash in a decoder?)"


# ---------------------------------------------------------------------------------------- report
@dataclass
class ExtractionReport:
    """What :func:`extract_catalog` did.

    Attributes
    ----------
    out_dir : Path
    n_items : int
        Catalog rows (= rows of the output).
    n_ok, n_failed : int
        Rows with status "ok" / "failed".
    n_cached : int
        Rows served from the cache (ok or failed) instead of extracted in this run.
    failures : list of (item_id, path, reason)
    seconds : float
        Wall time of the whole call.
    video_seconds : float
        Media duration of the rows extracted (not cached) successfully in this run.
    config_key : str
        Cache folder name under ``out_dir/cache``.
    executor : str
        How the files were extracted: ``"in-process"`` (one after another), ``"threads"``,
        ``"processes"``, or ``"none"`` (everything came from the cache).
    workers : int
        Files extracted at a time (0 when nothing was extracted).
    """

    out_dir: Path
    n_items: int
    n_ok: int
    n_failed: int
    n_cached: int
    failures: list[tuple[Any, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    video_seconds: float = 0.0
    config_key: str = ""
    executor: str = "none"
    workers: int = 0

    @property
    def n_extracted(self) -> int:
        """Rows computed in this run (not from the cache)."""
        return self.n_items - self.n_cached

    def exit_code(self) -> int:
        """CLI status: 0 when at least one item succeeded (failures are warnings), 1 otherwise."""
        return 0 if self.n_ok > 0 else 1

    def summary(self, max_failures: int = 10) -> str:
        """Human-readable result; failures listed (up to ``max_failures``) with their reasons."""
        lines = [
            f"features: {self.n_ok}/{self.n_items} items ok, {self.n_failed} failed, "
            f"{self.n_cached} from cache, {self.seconds:.1f} s -> {self.out_dir}"
        ]
        if self.video_seconds > 0 and self.seconds > 0:
            how = f", {self.executor}" + (f" x{self.workers}" if self.workers > 1 else "")
            lines.append(
                f"throughput: {self.video_seconds / self.seconds:.1f} media-seconds per second "
                f"({self.video_seconds:.1f} s of media extracted{how})"
            )
        if self.n_ok == 0:
            lines.append("ERROR: no item could be extracted; see the reasons below")
        elif self.n_failed:
            lines.append(
                f"WARNING: {self.n_failed} item(s) failed; they are kept with status 'failed' and every "
                "modality mask False (rerun with retry_failed / --retry-failed after fixing the files)"
            )
        for item_id, path, reason in self.failures[:max_failures]:
            lines.append(f"  {item_id!s}: {path}: {reason}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more (items.parquet, column 'error')")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["failures"] = [[_json_id(i), p, r] for i, p, r in self.failures]
        return d


# ---------------------------------------------------------------------------------------- hashing
def file_sha1(path: str | Path) -> str:
    """SHA-1 hex digest of a file's bytes, streamed in 1 MiB chunks."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class HashIndex:
    """(resolved path, size, mtime_ns) -> sha1, so unchanged files are hashed once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        if path.exists():
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}  # a damaged index only costs re-hashing

    def sha1(self, file: Path) -> str:
        st = file.stat()
        key = str(file.resolve())
        hit = self.entries.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = file_sha1(file)
        self.entries[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.entries))


def hash_content(index: HashIndex, path: Path, audio_path: Path | None) -> str:
    h = index.sha1(path)
    if audio_path is not None:
        h = hashlib.sha1(f"{h}+{index.sha1(audio_path)}".encode()).hexdigest()
    return h


# ---------------------------------------------------------------------------------------- cache entries
@dataclass
class Task:
    content_hash: str
    path: str
    audio_path: str | None


@dataclass
class _Result:
    content_hash: str
    ok: bool
    blocks: dict[str, np.ndarray] = field(default_factory=dict)
    has_audio: bool = False
    has_video: bool = False
    duration_s: float | None = None
    info: dict = field(default_factory=dict)
    reason: str | None = None
    cached: bool = False


def _tmp_suffix() -> str:
    # Unique per writer: worker processes and extractor threads may write at the same time.
    return f"{_TMP_MARK}{os.getpid()}-{threading.get_ident()}"


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}{_tmp_suffix()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_ok(cache_dir: Path, res: _Result, config_key: str, path: str) -> None:
    meta = {
        "has_audio": res.has_audio,
        "has_video": res.has_video,
        "duration_s": res.duration_s,
        "info": res.info,
        "config_key": config_key,
        "path": path,
    }
    arrays = {f"block__{k}": v for k, v in res.blocks.items()}
    final = cache_dir / f"{res.content_hash}.npz"
    tmp = cache_dir / f"{res.content_hash}.npz{_tmp_suffix()}"
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta, default=str)), **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    stale = cache_dir / f"{res.content_hash}{_FAILED}"
    if stale.exists():  # a retried failure that now works
        stale.unlink()


def write_failed(cache_dir: Path, content_hash: str, reason: str, config_key: str, path: str) -> None:
    body = {"reason": reason, "config_key": config_key, "path": path, "time": time.time()}
    atomic_write_text(cache_dir / f"{content_hash}{_FAILED}", json.dumps(body))


def read_cached(cache_dir: Path, content_hash: str, retry_failed: bool) -> _Result | None:
    ok_file = cache_dir / f"{content_hash}.npz"
    if ok_file.exists():
        try:
            with np.load(ok_file, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                blocks = {k[len("block__"):]: z[k] for k in z.files if k.startswith("block__")}
        except (OSError, ValueError, KeyError):
            return None  # unreadable entry: recompute (the new one replaces it)
        return _Result(
            content_hash,
            True,
            blocks,
            bool(meta["has_audio"]),
            bool(meta["has_video"]),
            meta.get("duration_s"),
            meta.get("info") or {},
            cached=True,
        )
    bad_file = cache_dir / f"{content_hash}{_FAILED}"
    if bad_file.exists() and not retry_failed:
        try:
            reason = json.loads(bad_file.read_text())["reason"]
        except (OSError, ValueError, KeyError):
            return None
        return _Result(content_hash, False, reason=reason, cached=True)
    return None


def clean_stale(cache_dir: Path) -> int:
    """Remove temporaries and in-flight markers left by a killed run; the number of markers."""
    n_markers = 0
    for p in cache_dir.iterdir():
        if _TMP_MARK in p.name or p.name.endswith(RUNNING_SUFFIX):
            n_markers += p.name.endswith(RUNNING_SUFFIX)
            try:
                p.unlink()
            except FileNotFoundError:
                pass
    return n_markers


# ---------------------------------------------------------------------------------------- one file
def _check_vector(name: str, v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"block {name!r} has shape {a.shape}; the extractor must return 1-D vectors")
    if not np.isfinite(a).all():
        raise ValueError(f"block {name!r} contains NaN or infinite values")
    return a


def run_one(
    task: Task,
    extract_fn: Callable,
    config: Any,
    cache_dir: str,
    config_key: str,
    limit_threads: bool = True,
) -> _Result:
    """Extract one file and write its cache entry. Runs in a worker process, thread or in-process.

    ``limit_threads=False`` leaves the BLAS/OpenMP limits to the caller (the thread executor sets
    them once for the run: limits are process-wide, and a per-file ``threadpool_limits`` would
    restore them when one thread finishes while another is still extracting).
    """
    cdir = Path(cache_dir)
    from threadpoolctl import threadpool_limits

    marker = cdir / f"{task.content_hash}{RUNNING_SUFFIX}"
    marker.touch()  # lets the parent find the culprit if this process dies
    try:
        try:
            if limit_threads:
                # One BLAS/OpenMP thread per worker (config.torch_threads): with one worker per
                # core, extra pool threads only contend (measured: ~35% slower on 2 cores without).
                with threadpool_limits(limits=extractor_threads(config)):
                    ff = extract_fn(task.path, config, audio_path=task.audio_path)
            else:
                ff = extract_fn(task.path, config, audio_path=task.audio_path)
        except MediaDecodeError as e:
            reason = e.reason or str(e)
            write_failed(cdir, task.content_hash, reason, config_key, task.path)
            return _Result(task.content_hash, False, reason=reason)
        except ConfigError:
            raise  # bad settings (backbone, weights, device) fail every file: stop the batch
        except Exception as e:  # an extractor bug must not stop the batch; reported, not cached
            return _Result(task.content_hash, False, reason=f"unexpected error: {type(e).__name__}: {e}")
        try:
            blocks = {str(k): _check_vector(k, v) for k, v in dict(ff.blocks).items()}
            duration = None if ff.duration_s is None else float(ff.duration_s)
            if duration is not None and not np.isfinite(duration):
                duration = None  # unknown length: null in items.parquet, not NaN
            res = _Result(
                task.content_hash,
                True,
                blocks,
                bool(ff.has_audio),
                bool(ff.has_video),
                duration,
                dict(getattr(ff, "info", None) or {}),
            )
        except (ValueError, TypeError, AttributeError) as e:
            return _Result(task.content_hash, False, reason=f"invalid extractor output: {e}")
        _write_ok(cdir, res, config_key, task.path)
        return res
    finally:
        try:
            marker.unlink()
        except FileNotFoundError:
            pass


def take_in_flight(cache_dir: Path, tasks: list[Task]) -> list[Task]:
    """The tasks whose in-flight marker is still there after a crash (the suspects), markers removed."""
    suspects = [t for t in tasks if (cache_dir / f"{t.content_hash}{RUNNING_SUFFIX}").exists()]
    for t in suspects:
        (cache_dir / f"{t.content_hash}{RUNNING_SUFFIX}").unlink(missing_ok=True)
    return suspects


def record_crash(cache_dir: Path, task: Task, config_key: str) -> None:
    """Cache ``task`` as failed with :data:`CRASH_REASON` (it killed its worker even when run alone)."""
    write_failed(cache_dir, task.content_hash, CRASH_REASON, config_key, task.path)
    (cache_dir / f"{task.content_hash}{RUNNING_SUFFIX}").unlink(missing_ok=True)


def extractor_threads(config: Any) -> int:
    return max(1, int(getattr(config, "torch_threads", 1) or 1))


def _init_worker(threads: int) -> None:
    # For libraries this process loads from now on (torch's OpenMP); those already loaded
    # (numpy's BLAS) are limited per file by threadpool_limits in run_one.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


# ---------------------------------------------------------------------------------------- the run
def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _LineProgress:
    """Progress for a stderr that is not a terminal (a log file, CI): one plain line per 10 %.

    tqdm's carriage-return redraws would fill a log with one long unreadable line.
    """

    def __init__(self, total: int, initial: int, stream: Any = None) -> None:
        self.total, self.n, self.failed = total, initial, 0
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()
        self.last_tenth = initial * 10 // max(total, 1)
        if initial < total:
            cached = f" ({initial} of {total} from cache)" if initial else ""
            self._print(f"features: extracting {total - initial} files{cached}")

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def _line(self) -> None:
        pct = 100 * self.n // max(self.total, 1)
        failed = f", {self.failed} failed" if self.failed else ""
        elapsed = time.perf_counter() - self.t0
        self._print(f"features: {self.n}/{self.total} files ({pct}%){failed}, {elapsed:.1f} s")

    def set_postfix(self, failed: int = 0, refresh: bool = False) -> None:
        self.failed = failed

    def update(self, k: int) -> None:
        self.n += k
        tenth = self.n * 10 // max(self.total, 1)
        if tenth > self.last_tenth:
            self.last_tenth = tenth
            self._line()

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, enabled: bool):
    """A tqdm bar on a terminal, :class:`_LineProgress` otherwise, a silent bar when disabled."""
    if enabled and not _isatty(sys.stderr):
        return _LineProgress(total, initial)
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, disable=not enabled, unit="file", desc="features", dynamic_ncols=True
    )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _prepare_threads(config: Any, use_default: bool) -> None:
    """Build the default extractor's CNN once, in this thread, before extractor threads start.

    ``features.video`` caches models in a plain dict and seeds torch's global RNG while building
    one (``weights="none"`` is a fixed-seed init): two threads building at once could build it
    twice or interleave their seeding. Built here, every thread finds it cached. A bad backbone,
    weights or device raises :class:`ConfigError` here, as the first file would.
    """
    if not use_default or not getattr(config, "cnn", False):
        return
    from features.video import load_backbone, set_torch_threads

    set_torch_threads(extractor_threads(config))
    load_backbone(config.backbone, config.weights, config.device)


def _run_threads(
    tasks: list[Task],
    workers: int,
    extract_fn: Callable,
    config: Any,
    cache_dir: Path,
    config_key: str,
    on_done: Callable[[_Result], None],
) -> None:
    """Run tasks on ``workers`` threads of this process (see module docstring)."""
    from threadpoolctl import threadpool_limits

    threads = extractor_threads(config)

    def init_thread() -> None:
        # OpenMP's thread count is per calling thread: limit it in each pool thread too (the
        # process-wide BLAS limit set below is simply set again).
        threadpool_limits(limits=threads)

    with threadpool_limits(limits=threads):
        ex = ThreadPoolExecutor(workers, thread_name_prefix="avrec-extract", initializer=init_thread)
        try:
            futs = [
                ex.submit(run_one, t, extract_fn, config, str(cache_dir), config_key, False) for t in tasks
            ]
            for fut in as_completed(futs):
                on_done(fut.result())  # a ConfigError (or Ctrl-C) ends the run below
        except BaseException:
            # Files not started are dropped; the ones running finish (seconds) and are cached.
            ex.shutdown(wait=True, cancel_futures=True)
            raise
        ex.shutdown(wait=True)


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # unreadable files fail fast in extraction anyway
        return 0


def _plan(n_todo: int, workers: int | None, executor: str, died_in_flight: bool) -> tuple[str, int]:
    """(executor actually used, files at a time) for ``n_todo`` files; see module docstring."""
    if n_todo == 0:
        return "none", 0
    n = min(_default_workers() if workers is None else int(workers), n_todo)
    if executor == "auto" and workers != 1:
        executor = "processes" if n_todo >= PROCESS_MIN_FILES or died_in_flight else "threads"
    if executor == "processes":  # even one worker: isolation is the point
        return "processes", n
    return ("threads", n) if n > 1 else ("in-process", 1)


def _run_pool(
    tasks: list[Task],
    workers: int,
    extract_fn: Callable,
    config: Any,
    cache_dir: Path,
    config_key: str,
    on_done: Callable[[_Result], None],
) -> None:
    """Run tasks in spawned processes; survive worker deaths (see module docstring)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    threads = extractor_threads(config)
    pending = list(tasks)
    isolate: list[Task] = []
    while pending or isolate:
        if isolate:  # re-run suspects of a crash one per fresh process
            task = isolate.pop(0)
            batch, n_proc = [task], 1
        else:
            batch, pending, n_proc = pending, [], min(workers, len(pending))
        done: set[str] = set()
        ex = ProcessPoolExecutor(n_proc, mp_context=ctx, initializer=_init_worker, initargs=(threads,))
        try:
            futs = {
                ex.submit(run_one, t, extract_fn, config, str(cache_dir), config_key): t for t in batch
            }
            for fut in as_completed(futs):
                try:
                    res = fut.result()
                except BrokenProcessPool:
                    continue  # results that did arrive before the crash are still collected
                done.add(res.content_hash)
                on_done(res)
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise
        # Every future has resolved; the idle workers exit on their own (torch teardown takes
        # seconds that the caller need not wait for).
        ex.shutdown(wait=False)
        left = [t for t in batch if t.content_hash not in done]
        if not left:
            continue
        if len(batch) == 1:
            # Alone in its process and it still died: this file is the culprit.
            record_crash(cache_dir, batch[0], config_key)
            on_done(_Result(batch[0].content_hash, False, reason=CRASH_REASON))
            continue
        suspects = take_in_flight(cache_dir, left)
        if not suspects:  # died outside any file: start-up or import, not the media
            raise RuntimeError(
                "feature extraction worker processes died before extracting any file (an import "
                "error, or a script that starts extract_catalog without `if __name__ == '__main__':`?); "
                "run with workers=1 to see the error. Finished files are cached."
            )
        isolate.extend(suspects)
        pending.extend(t for t in left if t not in suspects)


def _modality_of_blocks(names: list[str], use_default: bool) -> dict[str, str]:
    """Block -> modality mask name (features.extract.BLOCKS; else the name's prefix)."""
    table: dict[str, str] = {}
    if use_default:
        from features.extract import BLOCKS

        table.update(BLOCKS)
    return {b: table.get(b, b.split("_")[0]) for b in names}


def resolve_extractor(extract_fn: Callable | None, config: Any) -> tuple[Callable, Any, str, bool]:
    """``(extract_fn, config, config_key, use_default)`` for a run: the default extractor and
    config when None, and the cache key (config key, plus a hash of a custom function's name so
    different extractors never share entries). The local and Spark engines both use it, so they
    share cache entries."""
    use_default = extract_fn is None
    if use_default:
        from features.extract import extract_file

        extract_fn = extract_file
    if config is None:
        from features.extract import ExtractorConfig

        config = ExtractorConfig()
    config_key = str(config.key())
    if not use_default:
        config_key += "-" + hashlib.sha1(_function_id(extract_fn).encode()).hexdigest()[:8]
    return extract_fn, config, config_key, use_default


def _function_id(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


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
    results: dict[str, _Result] = {}
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
    bar = _progress(len(items), n_cached_rows, progress)
    n_bad = [sum(len(rows_of[h]) for h, r in results.items() if not r.ok) + len(row_reason)]

    def on_done(res: _Result) -> None:
        results[res.content_hash] = res
        k = len(rows_of[res.content_hash])
        if not res.ok:
            n_bad[0] += k
            bar.set_postfix(failed=n_bad[0], refresh=False)
        bar.update(k)

    how, n_workers = _plan(len(todo), workers, executor, died_in_flight)
    # Largest files first (longest-processing-time scheduling): otherwise one big file started
    # last runs alone while the other workers idle. Results are assembled in catalog order.
    todo.sort(key=lambda t: -_file_size(t.path))
    try:
        if how == "in-process":
            for t in todo:
                on_done(run_one(t, extract_fn, config, str(cache_dir), config_key))
        elif how == "threads":
            _prepare_threads(config, use_default)
            _run_threads(todo, n_workers, extract_fn, config, cache_dir, config_key, on_done)
        elif how == "processes":
            _run_pool(todo, n_workers, extract_fn, config, cache_dir, config_key, on_done)
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
    results: dict[str, _Result],
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


def _json_id(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x
