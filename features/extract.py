"""Per-file feature extraction: one media file in, a few fixed-length vectors out.

The feature store calls :func:`extract_file` once per catalog item (one process per core) and
caches the result under the file's content hash and :meth:`ExtractorConfig.key`.

Blocks (see :data:`BLOCKS` and :func:`block_dims`):

- ``audio``      :func:`features.audio.audio_stats_vector` of the audio track (or of ``audio_path``);
- ``video_cnn``  temporal mean + max of backbone features of the sampled frames (``cnn=True`` only);
- ``video_desc`` :func:`features.video.video_descriptor_vector` of the sampled frames.

Failure policy (what is "honest" for a half-broken file):

- the file cannot be opened, is empty, or is truncated -> :class:`MediaDecodeError`;
- a video stream exists but does not decode -> :class:`MediaDecodeError` (the file is broken). The
  video stream is a video file's primary content and its declared frame count is the most reliable
  truncation signal (a truncated AVI still yields a plausible-looking audio prefix), so its failure
  is never downgraded to "no video";
- an audio stream exists (or ``audio_path`` is given) but does not decode, while the video decodes
  -> the video blocks are returned, ``has_audio=False`` and ``info["audio_error"]`` holds the
  reason (a warning is logged). Missing audio is then explicit in the modality mask, and the item
  keeps its picture features instead of being dropped. An audio-only file whose audio fails raises;
- neither modality present -> ``MediaDecodeError("no decodable audio or video stream")``.

``moviepy-media/video_with_failing_audio.mp4`` of the shared test media (a clip whose audio makes
moviepy's reader fail near the end) decodes completely with PyAV here: 11.23 s of audio against
11.23 s declared, so it gets ``has_audio=True`` and no ``audio_error``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.device import check_device
from recsys.errors import ConfigError, MediaDecodeError

log = logging.getLogger(__name__)

#: Bump whenever the vectors for a given config change (feature definitions, decoding, sampling).
#: 2: variable-frame-rate video is sampled by timestamps and audio shorter than the video is kept
#: (version 1 refused both), so cached failures and audio-less rows of version 1 are stale.
EXTRACTOR_VERSION = "2"

#: Block name -> name of the modality mask it belongs to.
BLOCKS = {"audio": "audio", "video_cnn": "video", "video_desc": "video"}

#: Config fields that do not change the output (only where and how fast it is computed); they are
#: kept in :meth:`ExtractorConfig.to_dict` for provenance but left out of :meth:`ExtractorConfig.key`
#: so a cache stays valid when the thread count or device changes.
RUNTIME_FIELDS = ("torch_threads", "device")


@dataclass(frozen=True)
class ExtractorConfig:
    """Settings of :func:`extract_file`.

    Parameters
    ----------
    fps : float
        Frames sampled per second of video.
    max_frames : int
        Cap on sampled frames; longer clips get this many frames spread evenly.
    frame_size : int
        Short side in pixels the frames are decoded to and fed to the CNN at.
    sample_rate : int
        Rate audio is decoded at (the statistics vector is computed at 16 kHz regardless).
    max_audio_s : float or None
        Use only the first this-many seconds of audio (None: all).
    backbone : str
        torchvision model name for the CNN block.
    weights : str
        ``"none"`` (fixed-seed random init), a path to a state_dict file, or a torchvision weights
        name such as ``"IMAGENET1K_V1"`` (needs internet or a populated torch hub cache).
    cnn : bool
        False leaves out the ``video_cnn`` block (no torch at all).
    torch_threads : int
        torch intra-op threads and FFmpeg decoding threads (1 when one worker runs per core).
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` (:mod:`features.device`).
    """

    fps: float = 1.0
    max_frames: int = 16
    frame_size: int = 112
    sample_rate: int = 16000
    max_audio_s: float | None = 60.0
    backbone: str = "resnet18"
    weights: str = "none"
    cnn: bool = True
    torch_threads: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"fps must be a positive number, got {self.fps!r}")
        if not (isinstance(self.max_frames, int) and self.max_frames >= 1):
            raise ConfigError(f"max_frames must be an int >= 1, got {self.max_frames!r}")
        if not (isinstance(self.frame_size, int) and self.frame_size >= 16):
            raise ConfigError(f"frame_size must be an int >= 16, got {self.frame_size!r}")
        if not (isinstance(self.sample_rate, int) and self.sample_rate >= 4000):
            raise ConfigError(f"sample_rate must be an int >= 4000, got {self.sample_rate!r}")
        if self.max_audio_s is not None and not (self.max_audio_s > 0):
            raise ConfigError(f"max_audio_s must be > 0 or None, got {self.max_audio_s!r}")
        if not (isinstance(self.torch_threads, int) and self.torch_threads >= 1):
            raise ConfigError(f"torch_threads must be an int >= 1, got {self.torch_threads!r}")
        if not isinstance(self.weights, str) or not self.weights:
            raise ConfigError(f"weights must be 'none', a file path or a weights name, got {self.weights!r}")
        check_device(self.device)  # the form only; whether this machine has it is asked when a file runs

    def to_dict(self) -> dict:
        """All settings as a JSON-ready dict (provenance)."""
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Stable 16-hex-digit hash of the output-affecting settings and :data:`EXTRACTOR_VERSION`.

        Runtime-only fields (:data:`RUNTIME_FIELDS`) are left out, and so are ``backbone`` and
        ``weights`` when ``cnn`` is False. A weights *file* enters by its content hash (not its
        path), so replacing the file invalidates cached features and copies on other machines share
        the key.
        """
        from features.video import weights_stamp

        d = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
        if not self.cnn:  # no CNN block: the backbone settings do not matter
            del d["backbone"], d["weights"]
        elif self.weights != "none":
            d["weights"] = weights_stamp(self.weights)
        d["extractor_version"] = EXTRACTOR_VERSION
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass
class FileFeatures:
    """Features of one media file.

    Attributes
    ----------
    blocks : dict of str to (d,) float32
        Keys from :data:`BLOCKS`; a modality's blocks are absent when the file lacks it (and
        ``video_cnn`` is absent when ``config.cnn`` is False).
    has_audio, has_video : bool
        Whether the audio / video blocks are present.
    duration_s : float
        Container duration (decoded length when the header has none).
    info : dict
        JSON-ready details: ``container``, ``fps``, ``size`` ([w, h]), ``n_frames`` (sampled),
        ``frame_timestamps``, ``video_codec``, ``audio_codec`` (of ``audio_source``), ``audio_source``
        (the file the audio block came from: ``audio_path`` when given, whatever the video holds),
        ``audio_duration_s``, ``audio_decode_errors``, ``audio_error`` (only when the audio
        failed), ``seconds`` (time per stage).
    """

    blocks: dict[str, np.ndarray]
    has_audio: bool
    has_video: bool
    duration_s: float
    info: dict = field(default_factory=dict)


def block_dims(config: ExtractorConfig = ExtractorConfig()) -> dict[str, int]:
    """Dimension of each block ``config`` produces (``video_cnn`` only when ``config.cnn``).

    Cheap: the backbone size comes from a shape-only pass, no weights are loaded.
    """
    from features.audio import AUDIO_STATS_DIM
    from features.video import VIDEO_DESC_DIM, backbone_dim

    dims = {"audio": AUDIO_STATS_DIM}
    if config.cnn:
        dims["video_cnn"] = 2 * backbone_dim(config.backbone)
    dims["video_desc"] = VIDEO_DESC_DIM
    return dims


def extract_file(
    path: str | Path,
    config: ExtractorConfig = ExtractorConfig(),
    audio_path: str | Path | None = None,
) -> FileFeatures:
    """Decode one media file and compute its feature blocks.

    Parameters
    ----------
    path : str or Path
        A video (with or without an audio track) or an audio-only file.
    config : ExtractorConfig
    audio_path : str or Path, optional
        A separate audio file for this item; when given it is used instead of the file's own track.

    Returns
    -------
    FileFeatures

    Raises
    ------
    MediaDecodeError
        Empty, unreadable, corrupt or truncated file; a video stream that does not decode; an
        audio-only item whose audio does not decode; no audio or video stream at all.
    ConfigError
        Bad backbone / weights / device settings (not a property of the file: the batch should stop).
    """
    from features.audio import audio_stats_vector
    from features.audio_decode import decode_audio
    from features.media import probe
    from features.video_decode import decode_video
    from features.video import cnn_vector, video_descriptor_vector

    path = Path(path)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    meta = probe(path)
    seconds["probe"] = time.perf_counter() - t0
    blocks: dict[str, np.ndarray] = {}
    info: dict = {
        "container": meta.container,
        "fps": meta.fps,
        "size": list(meta.size) if meta.size else None,
        "n_frames": 0,
        "frame_timestamps": [],
        "video_codec": meta.video_codec,
        "audio_codec": meta.audio_codec if audio_path is None else None,  # set from the track decoded
        "audio_source": None,
        "seconds": seconds,
    }
    duration = meta.duration_s

    has_video = False
    if meta.has_video:
        t = time.perf_counter()
        clip = decode_video(
            path,
            fps=config.fps,
            max_frames=config.max_frames,
            max_short_side=config.frame_size,
            threads=config.torch_threads,
        )
        seconds["decode_video"] = time.perf_counter() - t
        info["n_frames"] = int(clip.frames.shape[0])
        info["frame_timestamps"] = [round(float(x), 4) for x in clip.timestamps]
        t = time.perf_counter()
        blocks["video_desc"] = video_descriptor_vector(clip.frames, clip.timestamps)
        seconds["video_desc"] = time.perf_counter() - t
        if config.cnn:
            t = time.perf_counter()
            blocks["video_cnn"] = cnn_vector(
                clip.frames,
                backbone=config.backbone,
                weights=config.weights,
                frame_size=config.frame_size,
                device=config.device,
                torch_threads=config.torch_threads,
            )
            seconds["video_cnn"] = time.perf_counter() - t
        has_video = True
        if not math.isfinite(duration) and math.isfinite(clip.duration_s):
            duration = clip.duration_s

    audio_src = Path(audio_path) if audio_path is not None else (path if meta.has_audio else None)
    has_audio = False
    if audio_src is not None:
        info["audio_source"] = str(audio_src)
        t = time.perf_counter()
        try:
            track = decode_audio(
                audio_src,
                sample_rate=config.sample_rate,
                max_duration_s=config.max_audio_s,
                threads=config.torch_threads,
            )
        except MediaDecodeError as e:
            if not has_video:
                raise
            info["audio_error"] = str(e)
            log.warning("audio of %s left out, video kept: %s", path, e)
        else:
            seconds["decode_audio"] = time.perf_counter() - t
            info["audio_codec"] = track.codec  # of the file the audio came from (audio_path wins)
            info["audio_duration_s"] = round(track.duration_s, 4)
            info["audio_decode_errors"] = track.n_decode_errors
            t = time.perf_counter()
            blocks["audio"] = audio_stats_vector(track.wave, track.sample_rate)
            seconds["audio"] = time.perf_counter() - t
            has_audio = True
            if not math.isfinite(duration) and math.isfinite(track.declared_duration_s):
                duration = track.declared_duration_s

    if not has_audio and not has_video:
        raise MediaDecodeError(str(path), "no decodable audio or video stream")
    if not math.isfinite(duration):  # no header states a length (live WebM): what decoded is all we know
        decoded = [info.get("audio_duration_s", math.nan)]
        if has_video:
            decoded.append(clip.timestamps[-1] + (1.0 / clip.fps if math.isfinite(clip.fps) else 0.0))
        duration = max((d for d in decoded if math.isfinite(d)), default=math.nan)
    seconds["total"] = time.perf_counter() - t0
    for k in seconds:
        seconds[k] = round(seconds[k], 4)
    return FileFeatures(blocks=blocks, has_audio=has_audio, has_video=has_video, duration_s=float(duration), info=info)
