"""The feature cache: entries keyed by a file's content hash and the extractor's cache key.

Layout under an output folder ``DIR`` (see :mod:`features.store` for the rest of ``DIR``)::

    DIR/cache/hashes.json               path -> (size, mtime_ns, sha1): files unchanged since are not re-read
    DIR/cache/<key>/<sha1>.npz          one finished file: its blocks + JSON meta
    DIR/cache/<key>/<sha1>.failed.json  one known-bad file: the reason
    DIR/cache/<key>/<sha1>.running      in-flight marker: the file is being extracted right now

**Key.** ``<key>`` is ``config.key()`` (which includes the extractor version), plus a short hash
of the function's qualified name when a custom ``extract_fn`` is used, so different extractors never
share entries (:func:`resolve_extractor`). ``<sha1>`` is the SHA-1 of the file's full bytes, streamed
in 1 MiB chunks (of ``sha1(video) + sha1(audio)`` when the item has a separate audio file). Full
hashing costs one read of each file (about 1 GB/s, far below decoding cost) and is exact; the
:class:`HashIndex` keyed by (resolved path, size, mtime_ns) makes re-runs skip even that. Identical
files are extracted once.

**Atomic entries.** Each finished file is written to a temporary name and ``os.replace``-d into
place, so a killed run leaves only complete entries, plus temporaries and in-flight markers that
the next run deletes (:func:`clean_stale`). A marker left behind names the file a dead worker was
extracting (:func:`take_in_flight`); a file that kills its worker even alone is cached as failed
with :data:`CRASH_REASON` (:func:`record_crash`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CACHE_DIR = "cache"
HASH_INDEX = "hashes.json"
RUNNING_SUFFIX = ".running"
FAILED_SUFFIX = ".failed.json"
CRASH_REASON = "the worker process died while extracting this file (a crash in a decoder?)"
_CHUNK = 1 << 20
_TMP_MARK = ".tmp-"


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
    """The cache's content hash of an item: sha1 of its file, or of both sha1s with a separate audio file."""
    h = index.sha1(path)
    if audio_path is not None:
        h = hashlib.sha1(f"{h}+{index.sha1(audio_path)}".encode()).hexdigest()
    return h


@dataclass
class Task:
    """One file to extract into the cache entry ``content_hash`` (audio from ``audio_path`` when set)."""

    content_hash: str
    path: str
    audio_path: str | None


@dataclass
class FileResult:
    """One extracted (or cached) file: its blocks and streams, or why it failed (``ok=False``)."""

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
    """Write ``text`` to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    tmp = path.with_name(f"{path.name}{_tmp_suffix()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_ok(cache_dir: Path, res: FileResult, config_key: str, path: str) -> None:
    """Cache a finished file atomically (and drop a failure it had before a retry)."""
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
    stale = cache_dir / f"{res.content_hash}{FAILED_SUFFIX}"
    if stale.exists():  # a retried failure that now works
        stale.unlink()


def write_failed(cache_dir: Path, content_hash: str, reason: str, config_key: str, path: str) -> None:
    """Cache a known-bad file with its reason (not retried unless ``retry_failed``)."""
    body = {"reason": reason, "config_key": config_key, "path": path, "time": time.time()}
    atomic_write_text(cache_dir / f"{content_hash}{FAILED_SUFFIX}", json.dumps(body))


def read_cached(cache_dir: Path, content_hash: str, retry_failed: bool) -> FileResult | None:
    """The cached result of ``content_hash``; None when it must be extracted (absent, unreadable,
    or a cached failure with ``retry_failed``)."""
    ok_file = cache_dir / f"{content_hash}.npz"
    if ok_file.exists():
        try:
            with np.load(ok_file, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                blocks = {k[len("block__"):]: z[k] for k in z.files if k.startswith("block__")}
        except (OSError, ValueError, KeyError):
            return None  # unreadable entry: recompute (the new one replaces it)
        return FileResult(
            content_hash,
            True,
            blocks,
            bool(meta["has_audio"]),
            bool(meta["has_video"]),
            meta.get("duration_s"),
            meta.get("info") or {},
            cached=True,
        )
    bad_file = cache_dir / f"{content_hash}{FAILED_SUFFIX}"
    if bad_file.exists() and not retry_failed:
        try:
            reason = json.loads(bad_file.read_text())["reason"]
        except (OSError, ValueError, KeyError):
            return None
        return FileResult(content_hash, False, reason=reason, cached=True)
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
