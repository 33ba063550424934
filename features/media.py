"""Decoding media files: stream information, sampled video frames, resampled audio.

This module holds the stream information and the shared types and checks; the decoders are
:mod:`features.video_decode` and :mod:`features.audio_decode`.

- :func:`probe` reads the container header with PyAV: which streams exist, duration, fps, size.
- :func:`~features.video_decode.decode_video` samples RGB frames with OpenCV ``VideoCapture`` at a fixed rate (default one
  frame per second), capped at ``max_frames`` frames spread evenly over the clip. Skipped frames are
  only ``grab()``-ed (demuxed and decoded, never converted to RGB); long gaps are crossed by seeking.
- :func:`~features.audio_decode.decode_audio` decodes the first audio stream with PyAV and resamples it to mono float32
  at 16 kHz with ``av.AudioResampler``.

Every failure raises :class:`~recsys.errors.MediaDecodeError` with the path and the reason. Decoders
are lenient by nature (OpenCV returns "no frame" on a broken file, FFmpeg stops quietly at the end
of a truncated file), so the functions here check what they got against what the container
declares and raise rather than return an empty or partial result:

- a missing, unreadable or zero-byte file ("file is empty");
- a container FFmpeg cannot open (e.g. a text file renamed ``.mp4``);
- a video stream with no decodable frame;
- a file whose data ends well before the duration its container declares (a truncated download);
- a stream whose packets are there but do not decode to (most of) their length.

"Well before" means more than 10 % and more than half a second short: container headers are
routinely a few frames or milliseconds off, truncation is not.

Truncation is judged by **timestamps**, not by ``fps x duration``. A declared frame rate or count
is a hint: phone recordings and screen captures are variable-frame-rate (a WebM whose header says
30 fps may hold 836 frames spread over 44.5 s). The fast path plans frame numbers from the header;
when the stream ends early or the decoded timestamps drift from the plan, the file's packets are
demuxed (no decoding, :func:`stream_spans`) to see where its data really ends. Data that ends well
before the container's duration is a truncated file; otherwise the video is sampled again by
presentation time (``video_decode._read_timed``). An audio stream that is shorter than the video (common,
and legal) is likewise accepted when the file's other streams go on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.errors import MediaDecodeError

#: A decoded stream may end this much before its declared length before it counts as truncated.
TRUNCATION_TOLERANCE = 0.10
#: ... and more than this many seconds short.
TRUNCATION_SLACK_S = 0.5
#: Sequential ``grab()`` is used for gaps up to this many frames; longer gaps seek.
SEEK_MIN_GAP = 250
#: A decoded frame whose timestamp is this far from ``index / fps`` means the rate is not constant.
DRIFT_TOLERANCE_S = 0.5


def _short(got: float, expected: float) -> bool:
    """Whether ``got`` seconds fall well short of ``expected`` (see TRUNCATION_TOLERANCE)."""
    return got < (1.0 - TRUNCATION_TOLERANCE) * expected - TRUNCATION_SLACK_S


@dataclass(frozen=True)
class MediaInfo:
    """What a media container holds, read from its header (nothing is decoded).

    Attributes
    ----------
    path : str
    container : str
        FFmpeg's format name (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"matroska,webm"``, ``"mp3"`` ...).
    has_video, has_audio : bool
        Whether a video stream (cover art excluded) / an audio stream exists.
    duration_s : float
        Container duration in seconds; NaN when the header does not say.
    fps : float or None
        Average frame rate of the video stream.
    size : (int, int) or None
        Video ``(width, height)`` in pixels.
    n_frames : int or None
        Declared frame count of the video stream (estimated from duration x fps when absent).
    video_codec, audio_codec : str or None
    audio_sample_rate, audio_channels : int or None
        Of the first audio stream, before resampling.
    """

    path: str
    container: str
    has_video: bool
    has_audio: bool
    duration_s: float
    fps: float | None = None
    size: tuple[int, int] | None = None
    n_frames: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None


@dataclass(frozen=True)
class VideoFrames:
    """Frames sampled from a video stream.

    Attributes
    ----------
    frames : (n, H, W, 3) uint8
        RGB frames, ``n >= 1``.
    timestamps : (n,) float64
        Presentation time of each frame in seconds, increasing.
    indices : (n,) int64
        Frame number of each frame in the stream.
    fps : float
        Native frame rate of the stream (NaN when unknown).
    duration_s : float
        Stream duration in seconds (declared frames / fps; NaN when unknown).
    size : (int, int)
        Native ``(width, height)`` before any downscaling.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray
    fps: float
    duration_s: float
    size: tuple[int, int]


@dataclass(frozen=True)
class AudioTrack:
    """A decoded, resampled audio stream.

    Attributes
    ----------
    wave : (n_samples,) float32
        Mono samples, nominally in [-1, 1], ``n_samples >= 1``.
    sample_rate : int
        Rate of ``wave`` in Hz.
    duration_s : float
        ``n_samples / sample_rate``.
    declared_duration_s : float
        The stream's duration from the header (NaN when unknown), before any ``max_duration_s`` cap.
    source_sample_rate, source_channels : int
        Of the stream before resampling.
    n_decode_errors : int
        Packets FFmpeg could not decode and that were skipped (the rest of the stream was kept).
    codec : str or None
        FFmpeg name of the stream's codec (``aac``, ``pcm_s16le``, ...).
    """

    wave: np.ndarray
    sample_rate: int
    duration_s: float
    declared_duration_s: float
    source_sample_rate: int
    source_channels: int
    n_decode_errors: int = 0
    codec: str | None = None


# --------------------------------------------------------------------------- helpers
def _check_file(path: Path) -> None:
    """Raise MediaDecodeError for a missing, non-regular, empty or unreadable file."""
    if not path.exists():
        raise MediaDecodeError(str(path), "file not found")
    if not path.is_file():
        raise MediaDecodeError(str(path), "not a regular file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise MediaDecodeError(str(path), f"cannot stat file: {e}") from e
    if size == 0:
        raise MediaDecodeError(str(path), "file is empty")
    if not os.access(path, os.R_OK):
        raise MediaDecodeError(str(path), "file is not readable (permission denied)")


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path))
    # PyAV raises FFmpegError subclasses, but also OSError, UnicodeDecodeError on odd metadata and
    # ValueError; all mean "cannot open", which is what the caller needs to know.
    except Exception as e:  # noqa: BLE001
        raise MediaDecodeError(str(path), f"cannot open container: {e}") from e


def _video_streams(container) -> list:
    """Video streams, without attached pictures (cover art in MP3/M4A files is a 'video' stream)."""
    from av.stream import Disposition

    return [s for s in container.streams.video if not (s.disposition & Disposition.attached_pic)]


def _stream_duration(stream) -> float:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return math.nan


def _container_duration(container) -> float:
    import av

    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    durs = [_stream_duration(s) for s in container.streams]
    durs = [d for d in durs if math.isfinite(d)]
    return max(durs) if durs else math.nan


def _positive(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


# --------------------------------------------------------------------------- probe
def probe(path: str | Path) -> MediaInfo:
    """Read stream information from a media file's header.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    MediaInfo

    Raises
    ------
    MediaDecodeError
        Missing, empty or unreadable file, or a container FFmpeg cannot open.
    """
    path = Path(path)
    _check_file(path)
    container = _open_container(path)
    try:
        videos = _video_streams(container)
        audios = list(container.streams.audio)
        duration = _container_duration(container)
        fps = size = n_frames = vcodec = acodec = sr = channels = None
        if videos:
            v = videos[0]
            fps = _positive(v.average_rate) or _positive(v.guessed_rate) or _positive(v.base_rate)
            w, h = int(v.codec_context.width or 0), int(v.codec_context.height or 0)
            size = (w, h) if w > 0 and h > 0 else None
            n_frames = int(v.frames) if v.frames and v.frames > 0 else None
            vdur = _stream_duration(v)
            vdur = vdur if math.isfinite(vdur) else duration
            if n_frames is None and fps is not None and math.isfinite(vdur):
                n_frames = int(round(vdur * fps))
            vcodec = v.codec_context.name
        if audios:
            a = audios[0]
            acodec = a.codec_context.name
            sr = int(a.codec_context.sample_rate or a.rate or 0) or None
            channels = int(a.codec_context.channels or 0) or None
        return MediaInfo(
            path=str(path),
            container=str(container.format.name),
            has_video=bool(videos),
            has_audio=bool(audios),
            duration_s=duration,
            fps=fps,
            size=size,
            n_frames=n_frames,
            video_codec=vcodec,
            audio_codec=acodec,
            audio_sample_rate=sr,
            audio_channels=channels,
        )
    finally:
        container.close()


@dataclass(frozen=True)
class StreamSpans:
    """How much time the packets of a file cover, read by demuxing (nothing is decoded).

    Attributes
    ----------
    video_s, audio_s : float
        Span of the first video / audio stream's packets (first start to last end) in seconds;
        NaN when the stream is absent or has no timed packet.
    data_s : float
        Span of all packets of all streams (cover art excluded): how far the file's data reaches.
    declared_s : float
        The longest duration the header declares, for the container or any of these streams (NaN
        when it says nothing).
    """

    video_s: float
    audio_s: float
    data_s: float
    declared_s: float

    def truncated(self) -> bool:
        """The data ends well before the declared duration: the file was cut short."""
        return math.isfinite(self.declared_s) and math.isfinite(self.data_s) and _short(self.data_s, self.declared_s)

    def reason(self) -> str:
        return (f"its data ends at {self.data_s:.2f} s of the {self.declared_s:.2f} s its container declares: "
                "the file is truncated or corrupt")


def stream_spans(path: str | Path) -> StreamSpans:
    """Demux every packet of ``path`` and measure the time its streams cover.

    A truncated file simply runs out of packets (the demuxer's error at the cut is taken as the
    end), so the spans say where the data really ends, whatever the header claims.

    Raises
    ------
    MediaDecodeError
        The file cannot be opened.
    """
    import av

    path = Path(path)
    _check_file(path)
    container = _open_container(path)
    try:
        videos = _video_streams(container)
        first_v = videos[0].index if videos else None
        first_a = container.streams.audio[0].index if container.streams.audio else None
        timed = {s.index for s in container.streams} - {s.index for s in container.streams.video if s not in videos}
        start: dict[int, float] = {}
        end: dict[int, float] = {}
        try:
            for packet in container.demux():
                ts = packet.pts if packet.pts is not None else packet.dts
                i = packet.stream.index
                if ts is None or packet.time_base is None or i not in timed:
                    continue
                t0 = float(ts * packet.time_base)
                t1 = t0 + float((packet.duration or 0) * packet.time_base)
                start[i] = min(start.get(i, t0), t0)
                end[i] = max(end.get(i, t1), t1)
        # the data stops mid-packet (a cut file): what was read so far is the answer
        except (av.FFmpegError, OSError, ValueError):
            pass
        # the longest duration the header claims: a cut AVI (no index) gets its container and stream
        # durations estimated from the data that is left, but its header still counts every frame
        claims = [_container_duration(container), *(_stream_duration(container.streams[i]) for i in timed)]
        if videos and videos[0].frames and _positive(videos[0].average_rate):
            claims.append(videos[0].frames / float(videos[0].average_rate))
        claims = [c for c in claims if math.isfinite(c)]
        declared = max(claims) if claims else math.nan
    finally:
        container.close()

    def span(i: int | None) -> float:
        return end[i] - start[i] if i in start else math.nan

    data = max(end.values()) - min(start.values()) if start else math.nan
    return StreamSpans(video_s=span(first_v), audio_s=span(first_a), data_s=data, declared_s=declared)
