"""How the files of a feature extraction run are executed: one file, a thread pool, or processes.

:func:`run_one` extracts one file into the cache (:mod:`features.cache`) under its in-flight marker;
the executors call it ``workers`` files at a time:

- ``"threads"`` (:func:`run_threads`): a thread pool in this process. Decoding (OpenCV, PyAV),
  torch ops and most numpy work release the GIL, so two threads keep two cores busy (measured:
  1.9x the files per second of one thread on 2 idle cores): while one file is decoded the CNN runs
  on another (decode and CNN cost about the same on real clips), or two CNN passes run side by
  side. Nothing is imported or built per worker, so it pays off from the second file. torch keeps
  ``config.torch_threads`` intra-op threads per call, and BLAS/OpenMP pools are limited to that
  many for the whole run (a per-file limit would be undone by whichever thread finishes first).
  The kernel's autogroup scheduling gives each job an equal share of a busy machine whatever its
  thread count, so on cores other jobs keep busy the threads get about one thread's share. With
  the default extractor the CNN is built once, in the calling thread, before the pool starts
  (:func:`prepare_threads`): ``features.video`` caches models in a plain dict and seeds torch's
  global RNG while building one, which concurrent builds could interleave. Threads give
  bit-identical results to ``workers=1``. No crash isolation: a segfault in a decoder ends the
  whole run.
- ``"processes"`` (:func:`run_processes`): spawned worker processes (``spawn`` context: torch and
  fork do not mix), each with ``config.torch_threads`` BLAS/OpenMP threads. Each pays the torch
  import and model build once (4-20 s on 2 shared cores) and, once started, runs no faster than a
  thread. But a worker that dies (a segfault in a decoder) only breaks the pool: the files that
  were in flight are re-run one per process to find the culprit, which is recorded as failed, and
  the batch goes on. ``extract_fn`` must be importable by name.

:func:`plan` picks one. ``executor="auto"`` (the default) uses processes when at least
:data:`PROCESS_MIN_FILES` files are to be extracted (the start-up is then a small share of the run,
and a large catalog from outside is where a crashing file is most likely), or when the previous run
in this folder died while extracting a file (its in-flight markers are still there: that file may
crash again, and processes isolate it); otherwise threads. ``workers=1`` runs the files one after
another in this process (its thread pools limited the same way while a file is extracted, then
restored), except with ``executor="processes"``, which always uses worker processes.

Failures: decode failures (:class:`~recsys.errors.MediaDecodeError`) and worker crashes on a file
are cached as failed; unexpected exceptions (extractor bugs) are reported but not cached; a
:class:`~recsys.errors.ConfigError` from the extractor (bad backbone, weights, device) stops the
run, as it is not a property of one file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from features.cache import (
    CRASH_REASON,
    RUNNING_SUFFIX,
    FileResult,
    Task,
    record_crash,
    take_in_flight,
    write_failed,
    write_ok,
)
from recsys.errors import ConfigError, MediaDecodeError

#: ``executor="auto"`` uses worker processes from this many files to extract on (threads below).
#: Once started, threads scale like processes (2 threads: 1.9x one on 2 idle cores), so processes
#: only buy crash isolation, at 4-20 s of torch import and model build per worker (2 shared
#: cores) before the first file. A file costs 0.1-0.5 s of one core (demo clips to real clips):
#: from here on that start-up is a small share of the run, and a large catalog of outside files
#: is where a crashing decoder is most likely.
PROCESS_MIN_FILES = 1000
EXECUTORS = ("auto", "threads", "processes")


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
) -> FileResult:
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
            return FileResult(task.content_hash, False, reason=reason)
        except ConfigError:
            raise  # bad settings (backbone, weights, device) fail every file: stop the batch
        except Exception as e:  # an extractor bug must not stop the batch; reported, not cached
            return FileResult(task.content_hash, False, reason=f"unexpected error: {type(e).__name__}: {e}")
        try:
            blocks = {str(k): _check_vector(k, v) for k, v in dict(ff.blocks).items()}
            duration = None if ff.duration_s is None else float(ff.duration_s)
            if duration is not None and not np.isfinite(duration):
                duration = None  # unknown length: null in items.parquet, not NaN
            res = FileResult(
                task.content_hash,
                True,
                blocks,
                bool(ff.has_audio),
                bool(ff.has_video),
                duration,
                dict(getattr(ff, "info", None) or {}),
            )
        except (ValueError, TypeError, AttributeError) as e:
            return FileResult(task.content_hash, False, reason=f"invalid extractor output: {e}")
        write_ok(cdir, res, config_key, task.path)
        return res
    finally:
        try:
            marker.unlink()
        except FileNotFoundError:
            pass


def extractor_threads(config: Any) -> int:
    """BLAS/OpenMP/torch threads per extracting worker: ``config.torch_threads`` (at least 1)."""
    return max(1, int(getattr(config, "torch_threads", 1) or 1))


def _init_worker(threads: int) -> None:
    # For libraries this process loads from now on (torch's OpenMP); those already loaded
    # (numpy's BLAS) are limited per file by threadpool_limits in run_one.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def prepare_threads(config: Any, use_default: bool) -> None:
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


def run_threads(
    tasks: list[Task],
    workers: int,
    extract_fn: Callable,
    config: Any,
    cache_dir: Path,
    config_key: str,
    on_done: Callable[[FileResult], None],
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


def largest_first(tasks: list[Task]) -> list[Task]:
    """``tasks`` by decreasing file size (longest-processing-time scheduling): otherwise one big file
    started last runs alone while the other workers idle."""
    return sorted(tasks, key=lambda t: -_file_size(t.path))


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # unreadable files fail fast in extraction anyway
        return 0


def plan(n_todo: int, workers: int | None, executor: str, died_in_flight: bool) -> tuple[str, int]:
    """(executor actually used, files at a time) for ``n_todo`` files; see module docstring."""
    if n_todo == 0:
        return "none", 0
    n = min(_default_workers() if workers is None else int(workers), n_todo)
    if executor == "auto" and workers != 1:
        executor = "processes" if n_todo >= PROCESS_MIN_FILES or died_in_flight else "threads"
    if executor == "processes":  # even one worker: isolation is the point
        return "processes", n
    return ("threads", n) if n > 1 else ("in-process", 1)


def run_processes(
    tasks: list[Task],
    workers: int,
    extract_fn: Callable,
    config: Any,
    cache_dir: Path,
    config_key: str,
    on_done: Callable[[FileResult], None],
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
            on_done(FileResult(batch[0].content_hash, False, reason=CRASH_REASON))
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

