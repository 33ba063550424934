"""The training data of the self-supervised encoders: the catalog's media decoded once, cached.

:func:`build_media_cache` decodes every catalog item ONCE (PyAV audio, OpenCV frames, through
:mod:`features.media`) into a :class:`MediaCache` stored as one ``.npz`` file (no pickle):

- **audio**: the clip's :func:`~features.audio.logmel` (64 bands, 10 ms hop, 16 kHz) cut into
  patches of ``patch_frames`` frames (96 = 0.96 s) every ``patch_hop`` frames (half a patch), at most
  ``max_patches`` per clip spread evenly over it (:func:`logmel_patches`, also used at inference so
  an encoder sees the same cut). A clip shorter than one patch is tiled to fill it.
- **video**: ``frames_per_clip`` RGB frames spread evenly over the clip, resized (squashed, nothing
  cropped away) to ``frame_size`` x ``frame_size``, uint8.

Index arrays tie patches and frames to items: ``patch_item`` / ``frame_item`` (sorted item rows),
``patch_time_s`` / ``frame_time_s`` (centre time in the clip). Each modality decodes on its own: an
item whose video fails keeps its audio and vice versa; every failure is listed in ``failures``
(item id, modality, reason) and the build goes on. Training code only reads the cache
(preprocessing never runs inside training).

The file records a fingerprint of the settings and of the media files (path, size, mtime), so
:func:`build_media_cache` with ``reuse=True`` returns the existing cache when nothing changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import ConfigError, DataError, MediaDecodeError

#: Bump when the cache content for given settings changes.
CACHE_VERSION = "1"


@dataclass(frozen=True)
class MediaCacheConfig:
    """What :func:`build_media_cache` decodes.

    Parameters
    ----------
    sample_rate : int
        Audio is decoded to this rate (Hz) before the log-mel.
    n_mels : int
        Mel bands.
    patch_frames : int
        Log-mel frames per audio patch (96 frames of 10 ms = 0.96 s).
    patch_hop : int or None
        Frames between patch starts (None: half a patch).
    max_patches : int
        At most this many patches per clip, spread evenly over it.
    max_audio_s : float or None
        Decode only the first this-many seconds of audio.
    frames_per_clip : int
        Video frames per clip, spread evenly over it.
    frame_size : int
        Frames are stored as ``frame_size`` x ``frame_size`` RGB.
    """

    sample_rate: int = 16000
    n_mels: int = 64
    patch_frames: int = 96
    patch_hop: int | None = None
    max_patches: int = 12
    max_audio_s: float | None = 60.0
    frames_per_clip: int = 4
    frame_size: int = 64

    def __post_init__(self) -> None:
        for k in ("sample_rate", "n_mels", "patch_frames", "max_patches", "frames_per_clip", "frame_size"):
            v = getattr(self, k)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ConfigError(f"{k} must be a positive int, got {v!r}")
        if self.sample_rate < 4000 or self.n_mels < 8 or self.patch_frames < 8 or self.frame_size < 16:
            raise ConfigError(
                "need sample_rate >= 4000, n_mels >= 8, patch_frames >= 8 and frame_size >= 16, got "
                f"{self.sample_rate}, {self.n_mels}, {self.patch_frames}, {self.frame_size}"
            )
        if self.patch_hop is not None and not (isinstance(self.patch_hop, int) and self.patch_hop >= 1):
            raise ConfigError(f"patch_hop must be a positive int or None, got {self.patch_hop!r}")
        if self.max_audio_s is not None and not self.max_audio_s > 0:
            raise ConfigError(f"max_audio_s must be > 0 or None, got {self.max_audio_s!r}")

    @property
    def hop(self) -> int:
        return self.patch_hop if self.patch_hop is not None else max(self.patch_frames // 2, 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def logmel_patches(
    logmel: np.ndarray, patch_frames: int, hop: int, max_patches: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a log-mel spectrogram into fixed-size patches.

    Patches start every ``hop`` frames; when there are more than ``max_patches``, that many are kept,
    spread evenly over the clip. A spectrogram shorter than one patch is tiled (repeated) to fill it,
    so a short sound is not padded with silence the encoders never saw.

    Parameters
    ----------
    logmel : (T, n_mels) float
        ``T >= 1``.
    patch_frames, hop, max_patches : int

    Returns
    -------
    patches : (n, patch_frames, n_mels) float32
        ``1 <= n <= max_patches``.
    starts : (n,) int64
        First frame of each patch.
    """
    lm = np.asarray(logmel, dtype=np.float32)
    if lm.ndim != 2 or lm.shape[0] < 1:
        raise DataError(f"log-mel must be (T >= 1, n_mels), got shape {lm.shape}")
    if lm.shape[0] < patch_frames:
        lm = np.pad(lm, ((0, patch_frames - lm.shape[0]), (0, 0)), mode="wrap")
    starts = np.arange(0, lm.shape[0] - patch_frames + 1, hop, dtype=np.int64)
    if starts.size > max_patches:
        keep = np.round(np.linspace(0, starts.size - 1, max_patches)).astype(np.int64)
        starts = starts[np.unique(keep)]
    patches = np.stack([lm[s : s + patch_frames] for s in starts])
    return patches.astype(np.float32, copy=False), starts


@dataclass
class MediaCache:
    """Decoded training media of a catalog.

    Attributes
    ----------
    item_ids : (n_items,) str
        Catalog item ids as strings, catalog order.
    has_audio, has_video : (n_items,) bool
        Whether the item has patches / frames.
    patches : (n_patches, patch_frames, n_mels) float32
        Log-mel patches, grouped by item in catalog order.
    patch_item : (n_patches,) int32
        Row in ``item_ids`` of each patch (non-decreasing).
    patch_time_s : (n_patches,) float32
        Centre time of each patch in its clip.
    frames : (n_frames, frame_size, frame_size, 3) uint8
        RGB frames, grouped by item in catalog order.
    frame_item : (n_frames,) int32
    frame_time_s : (n_frames,) float32
    failures : list of (item_id, modality, reason)
    config : MediaCacheConfig
    fingerprint : str
        Hash of the settings and the media files' paths, sizes and mtimes.
    seconds : float
        Time the build took.
    """

    item_ids: np.ndarray
    has_audio: np.ndarray
    has_video: np.ndarray
    patches: np.ndarray
    patch_item: np.ndarray
    patch_time_s: np.ndarray
    frames: np.ndarray
    frame_item: np.ndarray
    frame_time_s: np.ndarray
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    config: MediaCacheConfig = field(default_factory=MediaCacheConfig)
    fingerprint: str = ""
    seconds: float = 0.0

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    def __repr__(self) -> str:
        return (f"MediaCache({self.n_items} items; {self.patches.shape[0]} patches, {self.frames.shape[0]} frames; "
                f"audio {int(self.has_audio.sum())}, video {int(self.has_video.sum())}, "
                f"{len(self.failures)} failures)")

    def patch_offsets(self) -> np.ndarray:
        """(n_items + 1,) int64: item ``i``'s patches are ``patches[off[i]:off[i + 1]]``."""
        return np.searchsorted(self.patch_item, np.arange(self.n_items + 1)).astype(np.int64)

    def frame_offsets(self) -> np.ndarray:
        """(n_items + 1,) int64: item ``i``'s frames are ``frames[off[i]:off[i + 1]]``."""
        return np.searchsorted(self.frame_item, np.arange(self.n_items + 1)).astype(np.int64)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (plain arrays only, readable with ``allow_pickle=False``) atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fail = np.asarray([list(f) for f in self.failures], dtype=str).reshape(-1, 3)
        meta = {"version": CACHE_VERSION, "config": self.config.to_dict(), "fingerprint": self.fingerprint,
                "seconds": self.seconds}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
        try:
            np.savez(
                tmp,
                item_ids=np.asarray(self.item_ids, dtype=str),
                has_audio=self.has_audio.astype(bool),
                has_video=self.has_video.astype(bool),
                patches=self.patches.astype(np.float32, copy=False),
                patch_item=self.patch_item.astype(np.int32, copy=False),
                patch_time_s=self.patch_time_s.astype(np.float32, copy=False),
                frames=self.frames.astype(np.uint8, copy=False),
                frame_item=self.frame_item.astype(np.int32, copy=False),
                frame_time_s=self.frame_time_s.astype(np.float32, copy=False),
                failures=fail,
                meta=np.asarray(json.dumps(meta)),
            )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "MediaCache":
        """Read a cache written by :meth:`save`.

        Raises
        ------
        DataError
            Missing or unreadable file, or one written by another cache version.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"media cache not found: {path}; build it with training.ssl_data.build_media_cache")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read media cache ({e}); delete it to rebuild") from e
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("version") != CACHE_VERSION:
            raise DataError(f"{path}: media cache version {meta.get('version')!r}, this avrec writes "
                            f"{CACHE_VERSION!r}; delete it to rebuild")
        fail = arrays.pop("failures")
        return cls(
            **arrays,
            failures=[tuple(str(x) for x in row) for row in fail.tolist()],
            config=MediaCacheConfig(**meta["config"]),
            fingerprint=meta["fingerprint"],
            seconds=float(meta.get("seconds", 0.0)),
        )


# --------------------------------------------------------------------------- building
def _file_stamp(p: Path | None) -> list:
    if p is None:
        return [None]
    try:
        st = p.stat()
        return [str(p.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(p), "missing"]


def cache_fingerprint(catalog, config: MediaCacheConfig) -> str:
    """Hash of the settings, the cache version and each item's id and media file stamps."""
    items = [[str(i), _file_stamp(Path(p)), _file_stamp(a)]
             for i, p, a in zip(catalog.item_ids.tolist(), catalog.paths, catalog.audio_paths)]
    blob = json.dumps({"v": CACHE_VERSION, "config": config.to_dict(), "items": items}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _decode_patches(path: Path, cfg: MediaCacheConfig) -> tuple[np.ndarray, np.ndarray]:
    from features.audio import logmel
    from features.audio_decode import decode_audio

    track = decode_audio(path, sample_rate=cfg.sample_rate, max_duration_s=cfg.max_audio_s, threads=1)
    lm = logmel(track.wave, track.sample_rate, cfg.n_mels)
    patches, starts = logmel_patches(lm, cfg.patch_frames, cfg.hop, cfg.max_patches)
    hop_s = 0.010  # logmel's default hop
    return patches, ((starts + cfg.patch_frames / 2.0) * hop_s).astype(np.float32)


def square_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Bring RGB frames to ``size`` x ``size``: short side down to ``size`` (as ``decode_video``'s
    ``max_short_side`` does), then squashed to a square (the whole picture is kept, nothing cropped).

    Parameters
    ----------
    frames : (n, H, W, 3) uint8

    Returns
    -------
    (n, size, size, 3) uint8
    """
    import cv2

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1 or frames.dtype != np.uint8:
        raise DataError(f"frames must be (n >= 1, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    out = []
    for f in frames:
        h, w = f.shape[:2]
        scale = size / min(h, w)
        if scale < 1.0:  # the same rounding as features.video_decode._to_rgb
            f = cv2.resize(f, (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)), interpolation=cv2.INTER_AREA)
        if f.shape[:2] != (size, size):
            f = cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)
        out.append(f)
    return np.ascontiguousarray(np.stack(out), dtype=np.uint8)


def _decode_frames(path: Path, cfg: MediaCacheConfig) -> tuple[np.ndarray, np.ndarray]:
    from features.video_decode import decode_video

    # fps far above any native rate: sample_indices then spreads max_frames evenly over the clip
    clip = decode_video(path, fps=1000.0, max_frames=cfg.frames_per_clip, max_short_side=cfg.frame_size, threads=1)
    return square_frames(clip.frames, cfg.frame_size), clip.timestamps.astype(np.float32)


def build_media_cache(
    catalog,
    out_path: str | Path,
    config: MediaCacheConfig | None = None,
    *,
    reuse: bool = True,
    log: Callable[[str], None] | None = None,
    **settings: Any,
) -> MediaCache:
    """Decode every catalog item once into a :class:`MediaCache` saved at ``out_path``.

    Parameters
    ----------
    catalog : recsys.data.Catalog
        Items in order; an item's ``audio_path`` (when set) is used for its audio.
    out_path : str or Path
        The ``.npz`` file.
    config : MediaCacheConfig, optional
    reuse : bool
        Return the existing file when its fingerprint (settings + media stamps) matches.
    log : callable, optional
        Progress lines.
    **settings
        Override fields of ``config`` (``patch_frames=96, frames_per_clip=4, ...``).

    Returns
    -------
    MediaCache

    Raises
    ------
    DataError
        An empty catalog.
    """
    cfg = dataclasses.replace(config or MediaCacheConfig(), **settings)
    if len(catalog) == 0:
        raise DataError("the catalog has no items; nothing to decode")
    out_path = Path(out_path)
    fp = cache_fingerprint(catalog, cfg)
    if reuse and out_path.is_file():
        try:
            old = MediaCache.load(out_path)
        except DataError:
            old = None
        if old is not None and old.fingerprint == fp:
            if log:
                log(f"media cache up to date: {out_path} ({old!r})")
            return old

    from features.media import probe

    t0 = time.perf_counter()
    n = len(catalog)
    has_a, has_v = np.zeros(n, bool), np.zeros(n, bool)
    patches, p_item, p_time, frames, f_item, f_time = [], [], [], [], [], []
    failures: list[tuple[str, str, str]] = []
    for row, (item_id, path, audio_path) in enumerate(zip(catalog.item_ids.tolist(), catalog.paths, catalog.audio_paths)):
        path = Path(path)
        try:
            info = probe(path)
        except MediaDecodeError as e:
            failures.append((str(item_id), "file", e.reason))
            info = None
        if info is not None and info.has_video:
            try:
                fr, ts = _decode_frames(path, cfg)
                frames.append(fr)
                f_item.append(np.full(len(fr), row, np.int32))
                f_time.append(ts)
                has_v[row] = True
            except MediaDecodeError as e:
                failures.append((str(item_id), "video", e.reason))
        audio_src = Path(audio_path) if audio_path is not None else (path if info is not None and info.has_audio else None)
        if audio_src is not None:
            try:
                pa, ts = _decode_patches(audio_src, cfg)
                patches.append(pa)
                p_item.append(np.full(len(pa), row, np.int32))
                p_time.append(ts)
                has_a[row] = True
            except (MediaDecodeError, DataError) as e:
                failures.append((str(item_id), "audio", getattr(e, "reason", str(e))))
        if log and (row + 1) % 100 == 0:
            log(f"media cache: {row + 1}/{n} items decoded ({time.perf_counter() - t0:.0f}s)")
    s, m = cfg.frame_size, cfg.n_mels
    cache = MediaCache(
        item_ids=np.asarray([str(i) for i in catalog.item_ids.tolist()], dtype=str),
        has_audio=has_a,
        has_video=has_v,
        patches=np.concatenate(patches) if patches else np.zeros((0, cfg.patch_frames, m), np.float32),
        patch_item=np.concatenate(p_item) if p_item else np.zeros(0, np.int32),
        patch_time_s=np.concatenate(p_time) if p_time else np.zeros(0, np.float32),
        frames=np.concatenate(frames) if frames else np.zeros((0, s, s, 3), np.uint8),
        frame_item=np.concatenate(f_item) if f_item else np.zeros(0, np.int32),
        frame_time_s=np.concatenate(f_time) if f_time else np.zeros(0, np.float32),
        failures=failures,
        config=cfg,
        fingerprint=fp,
    )
    cache.seconds = time.perf_counter() - t0
    cache.save(out_path)
    if log:
        log(f"media cache built in {cache.seconds:.1f}s: {out_path} ({cache!r})")
    return cache
