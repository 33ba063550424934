"""Decoding media files: stream information, sampled video frames, resampled audio.

- :func:`probe` reads the container header with PyAV: which streams exist, duration, fps, size.
- :func:`decode_video` samples RGB frames with OpenCV ``VideoCapture`` at a fixed rate (default one
  frame per second), capped at ``max_frames`` frames spread evenly over the clip. Skipped frames are
  only ``grab()``-ed (demuxed and decoded, never converted to RGB); long gaps are crossed by seeking.
- :func:`decode_audio` decodes the first audio stream with PyAV and resamples it to mono float32
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
presentation time (:func:`_read_timed`). An audio stream that is shorter than the video (common,
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


# --------------------------------------------------------------------------- video
def sample_indices(n_total: int, native_fps: float, fps: float = 1.0, max_frames: int = 16) -> np.ndarray:
    """Frame numbers to sample from a stream of ``n_total`` frames.

    One frame every ``1 / fps`` seconds, each taken at the centre of its interval (so a 1 s clip
    gives its middle frame, not a possibly black first frame; a final partial interval whose centre
    lies past the end gives none, a clip shorter than half an interval gives its middle frame). When that gives more than
    ``max_frames`` frames, ``max_frames`` frames are spread evenly over the whole clip instead.

    Parameters
    ----------
    n_total : int
        Frames in the stream (>= 1).
    native_fps : float
        Stream frame rate (> 0).
    fps : float
        Sampling rate in frames per second (> 0); rates above ``native_fps`` take every frame.
    max_frames : int
        Cap on the number of frames (>= 1).

    Returns
    -------
    (n,) int64
        Strictly increasing frame numbers in ``[0, n_total)``, ``1 <= n <= max_frames``.
    """
    if n_total < 1 or native_fps <= 0 or fps <= 0 or max_frames < 1:
        raise ValueError(f"bad sampling parameters n_total={n_total} native_fps={native_fps} fps={fps}")
    step = max(native_fps / fps, 1.0)
    n_at_rate = max(int(math.ceil(n_total / step)), 1)
    if n_at_rate > max_frames:
        idx = np.floor((np.arange(max_frames) + 0.5) * (n_total / max_frames))
    else:
        idx = np.floor((np.arange(n_at_rate) + 0.5) * step)
        idx = idx[idx < n_total]  # a last partial interval whose centre is past the end: none
        if idx.size == 0:  # a clip shorter than half a sampling interval: its middle frame
            idx = np.array([n_total // 2])
    return np.unique(np.clip(idx.astype(np.int64), 0, n_total - 1))


def _to_rgb(frame_bgr: np.ndarray, max_short_side: int | None) -> np.ndarray:
    import cv2

    if frame_bgr.ndim == 2:
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2RGB)
    elif frame_bgr.shape[2] == 4:
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    if max_short_side is not None:
        h, w = rgb.shape[:2]
        scale = max_short_side / min(h, w)
        if scale < 1.0:
            size = (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def decode_video(
    path: str | Path,
    *,
    fps: float = 1.0,
    max_frames: int = 16,
    max_short_side: int | None = None,
    threads: int = 1,
    seek_min_gap: int = SEEK_MIN_GAP,
) -> VideoFrames:
    """Sample RGB frames from the video stream of a file with OpenCV.

    Parameters
    ----------
    path : str or Path
    fps : float
        Frames per second to sample (default 1).
    max_frames : int
        At most this many frames; longer clips get ``max_frames`` frames spread evenly.
    max_short_side : int, optional
        Downscale frames (never upscale) so the shorter side is at most this many pixels; saves
        memory and work when the consumer resizes anyway.
    threads : int
        FFmpeg decoding threads (1 when one process runs per core).
    seek_min_gap : int
        Gaps of more frames than this are crossed with a seek instead of sequential ``grab()``.

    Returns
    -------
    VideoFrames
        ``frames`` (n, H, W, 3) uint8 RGB, ``timestamps`` (n,) float64 seconds.

    Raises
    ------
    MediaDecodeError
        The file cannot be opened as video, no frame decodes, the file's data ends more than 10 %
        before its container's duration (truncated file), or the video packets do not decode to
        their length.

    Notes
    -----
    Frames are planned from the header's rate and frame count. When the stream ends early or the
    decoded timestamps drift from ``index / fps`` (variable frame rate), the file is demuxed to
    tell a truncated file from a variable-rate one, and a variable-rate stream is sampled again
    by presentation time: ``timestamps`` are then the frames' own timestamps, and each sample is
    the first frame at or after its target time.
    """
    import cv2

    path = Path(path)
    _check_file(path)
    if fps <= 0 or max_frames < 1:
        raise ValueError(f"fps must be > 0 and max_frames >= 1, got fps={fps}, max_frames={max_frames}")
    params = [cv2.CAP_PROP_N_THREADS, int(threads)] if hasattr(cv2, "CAP_PROP_N_THREADS") else []
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise MediaDecodeError(
            str(path), "OpenCV could not open a video stream (not a video, unsupported codec or corrupt)"
        )
    try:
        native_fps = _positive(cap.get(cv2.CAP_PROP_FPS))
        n_decl = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        n_decl = n_decl if n_decl > 0 else None
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        duration = n_decl / native_fps if (n_decl is not None and native_fps is not None) else math.nan
        if native_fps is not None and n_decl is not None:
            try:
                idx, frames = _read_planned(cap, n_decl, native_fps, fps, max_frames, max_short_side, seek_min_gap)
                ts = idx / native_fps
            except _NotAsDeclared:
                cap.release()
                spans = stream_spans(path)
                if spans.truncated():
                    raise MediaDecodeError(str(path), spans.reason()) from None
                if not math.isfinite(spans.video_s):
                    raise MediaDecodeError(str(path), "video stream has no timed packets") from None
                cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
                idx, frames, ts, decoded_s = _read_timed(cap, spans.video_s, native_fps, fps, max_frames,
                                                         max_short_side)
                if frames and _short(decoded_s, spans.video_s):
                    raise MediaDecodeError(
                        str(path), f"video decodes to {decoded_s:.2f} s of the {spans.video_s:.2f} s its packets "
                                   "cover: the stream is corrupt") from None
                duration = spans.video_s
        else:
            idx, frames, ts = _read_scan(cap, native_fps, fps, max_frames, max_short_side)
    finally:
        cap.release()
    if not frames:
        raise MediaDecodeError(str(path), "video stream has no decodable frame")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:  # a resolution change mid-stream: bring all to the first frame's size
        h, w = frames[0].shape[:2]
        frames = [f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]
    return VideoFrames(
        frames=np.stack(frames),
        timestamps=np.asarray(ts, dtype=np.float64),
        indices=np.asarray(idx, dtype=np.int64),
        fps=native_fps if native_fps is not None else math.nan,
        duration_s=duration,
        size=size,
    )


class _NotAsDeclared(Exception):
    """The stream is not what its header's rate and frame count say (ends early, or its timestamps
    drift): decode_video demuxes the file to judge truncation and samples by time instead."""


def _read_planned(cap, n_decl, native_fps, fps, max_frames, max_short_side, seek_min_gap):
    """Grab up to each planned frame number, retrieve (decode to BGR) only the planned ones.

    Raises
    ------
    _NotAsDeclared
        The stream ends more than 10 % before ``n_decl`` frames, or a retrieved frame's timestamp is
        more than DRIFT_TOLERANCE_S away from ``index / native_fps``.
    """
    import cv2

    targets = sample_indices(n_decl, native_fps, fps, max_frames)
    frames: list[np.ndarray] = []
    got: list[int] = []
    pos = 0  # number of the frame the next grab() returns

    def ended_at(k: int) -> bool:
        """The stream ended at frame k: fine near the declared end, a question for the timestamps otherwise."""
        if k < (1.0 - TRUNCATION_TOLERANCE) * n_decl - 1:
            raise _NotAsDeclared(k)
        return True

    for t in targets.tolist():
        if t - pos > seek_min_gap and cap.set(cv2.CAP_PROP_POS_FRAMES, float(t)):
            # OpenCV's FFmpeg backend seeks to the keyframe before t and decodes up to t
            reported = cap.get(cv2.CAP_PROP_POS_FRAMES)
            pos = int(reported) if 0 <= reported <= t else t
        stopped = False
        while pos < t:
            if not cap.grab():
                stopped = ended_at(pos)
                break
            pos += 1
        if stopped:
            break
        if not cap.grab():
            ended_at(pos)
            break
        pos += 1
        # 0 means "no timestamps" (AVI): nothing to compare, the frame count is all there is
        ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        if ms > 0 and abs(ms / 1000.0 - t / native_fps) > DRIFT_TOLERANCE_S:
            raise _NotAsDeclared(t)
        ok, frame = cap.retrieve()
        if not ok or frame is None or frame.size == 0:
            ended_at(t)
            break
        frames.append(_to_rgb(frame, max_short_side))
        got.append(t)
    return np.asarray(got, dtype=np.int64), frames


def _read_timed(cap, span_s, native_fps, fps, max_frames, max_short_side):
    """Sample a variable-rate stream by presentation time: one pass of ``grab()``, each target time
    taken by the first frame at or after it (a long gap serves several targets with one frame).

    Targets are planned like :func:`sample_indices` over ``span_s`` seconds (at millisecond
    resolution). Returns ``(indices, frames, timestamps, decoded_s)``, where ``decoded_s`` is the
    timestamp reached by the last frame plus one nominal frame interval.
    """
    import cv2

    targets = sample_indices(max(int(round(span_s * 1000)), 1), 1000.0, fps, max_frames) / 1000.0
    frames, idx, ts = [], [], []
    j = k = 0
    t = 0.0
    while cap.grab():
        ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        t = ms / 1000.0 if ms > 0 else k / native_fps  # no timestamps (AVI): the nominal rate
        if j < len(targets) and t >= targets[j] - 0.5 / native_fps:
            ok, frame = cap.retrieve()
            if ok and frame is not None and frame.size and (not ts or t > ts[-1]):
                frames.append(_to_rgb(frame, max_short_side))
                idx.append(k)
                ts.append(t)
            while j < len(targets) and targets[j] - 0.5 / native_fps <= t:
                j += 1
        k += 1
    return (np.asarray(idx, dtype=np.int64), frames, np.asarray(ts, dtype=np.float64),
            t + 1.0 / native_fps if k else 0.0)


def _read_scan(cap, native_fps, fps, max_frames, max_short_side):
    """Sample a stream whose length or rate is unknown: read it all, halve the sampling on overflow.

    Keeps at most ``2 * max_frames`` frames in memory: whenever the buffer fills, every other frame
    is dropped and the sampling step doubles, so the kept frames stay evenly spread.
    """
    import cv2

    rate = native_fps if native_fps is not None else 25.0  # only used to space samples
    step = max(rate / fps, 1.0)
    frames, idx, ts = [], [], []
    k = 0
    next_t = 0.5 * step
    while cap.grab():
        if k >= math.floor(next_t):
            ok, frame = cap.retrieve()
            if ok and frame is not None and frame.size:
                frames.append(_to_rgb(frame, max_short_side))
                idx.append(k)
                ms = cap.get(cv2.CAP_PROP_POS_MSEC)
                ts.append(ms / 1000.0 if native_fps is None and ms > 0 else k / rate)
            next_t += step
            if len(frames) >= 2 * max_frames:
                frames, idx, ts = frames[::2], idx[::2], ts[::2]
                step *= 2
                next_t = idx[-1] + step
        k += 1
    if len(frames) > max_frames:  # the buffered frames nearest to an even spread over all k frames
        ideal = (np.arange(max_frames) + 0.5) * (k / max_frames)
        keep = np.unique(np.abs(np.asarray(idx)[None, :] - ideal[:, None]).argmin(axis=1))
        frames = [frames[i] for i in keep]
        idx = [idx[i] for i in keep]
        ts = [ts[i] for i in keep]
    return np.asarray(idx, dtype=np.int64), frames, np.asarray(ts, dtype=np.float64)


# --------------------------------------------------------------------------- audio
def decode_audio(
    path: str | Path,
    *,
    sample_rate: int = 16000,
    max_duration_s: float | None = None,
    threads: int = 1,
) -> AudioTrack:
    """Decode the first audio stream of a file to mono float32 at ``sample_rate`` with PyAV.

    Works for audio tracks of video containers (MP4, WebM, AVI, MKV, ...) and for audio files
    (MP3, WAV, FLAC, OGG, ...). Packets FFmpeg cannot decode are skipped and counted; the result is
    still checked against the declared duration.

    Parameters
    ----------
    path : str or Path
    sample_rate : int
        Output rate in Hz (default 16 kHz).
    max_duration_s : float, optional
        Decode only the first this-many seconds.
    threads : int
        FFmpeg decoding threads.

    Returns
    -------
    AudioTrack
        ``wave`` (n_samples,) float32 mono.

    Raises
    ------
    MediaDecodeError
        The container cannot be opened, has no audio stream, no sample decodes, the file's data
        ends more than 10 % (and 0.5 s) before its declared duration (truncated file), or the audio
        packets do not decode to their length. Audio that is merely shorter than the file's other
        streams (the header gives only the container's duration) is accepted.
    """
    import av

    path = Path(path)
    _check_file(path)
    if max_duration_s is not None and max_duration_s <= 0:
        raise ValueError(f"max_duration_s must be > 0 or None, got {max_duration_s}")
    container = _open_container(path)
    try:
        if not container.streams.audio:
            raise MediaDecodeError(str(path), "no audio stream")
        stream = container.streams.audio[0]
        try:
            stream.codec_context.thread_count = int(threads)
        except (AttributeError, ValueError):  # some decoders do not take a thread count
            pass
        src_sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        src_ch = int(stream.codec_context.channels or 0)
        codec = getattr(stream.codec_context, "name", None)
        declared = _stream_duration(stream)
        if not math.isfinite(declared):
            declared = _container_duration(container)
        limit = None if max_duration_s is None else int(round(max_duration_s * sample_rate))
        resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sample_rate))
        chunks: list[np.ndarray] = []
        n = 0
        n_errors = 0
        last_error: Exception | None = None

        def take(frames) -> None:
            nonlocal n
            for out in frames:
                arr = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                chunks.append(arr)
                n += arr.size

        try:
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                    for frame in decoded:
                        take(resampler.resample(frame))
                # a damaged packet: skip it, count it, keep going (FFmpeg's own CLI does the same)
                except (av.FFmpegError, ValueError) as e:
                    n_errors += 1
                    last_error = e
                if limit is not None and n >= limit:
                    break
        # the demuxer itself failed (e.g. data ends mid-packet): keep what decoded, judge below
        except (av.FFmpegError, OSError, ValueError) as e:
            last_error = e
        try:
            take(resampler.resample(None))
        except (av.FFmpegError, ValueError) as e:
            last_error = e
    finally:
        container.close()

    why = f" (last error: {last_error})" if last_error is not None else ""
    if n == 0:
        raise MediaDecodeError(str(path), f"audio stream has no decodable samples{why}")
    wave = np.concatenate(chunks)
    if limit is not None:
        wave = wave[:limit]
    got = wave.size / sample_rate
    if math.isfinite(declared):
        expected = declared if max_duration_s is None else min(declared, max_duration_s)
        if _short(got, expected):
            _judge_short_audio(path, got, declared, max_duration_s, why)
    if not np.isfinite(wave).all():
        raise MediaDecodeError(str(path), "decoded audio contains NaN or infinite samples")
    return AudioTrack(
        wave=np.ascontiguousarray(wave, dtype=np.float32),
        sample_rate=int(sample_rate),
        duration_s=got,
        declared_duration_s=declared,
        source_sample_rate=src_sr,
        source_channels=src_ch,
        n_decode_errors=n_errors,
        codec=codec,
    )


def _judge_short_audio(path: Path, got: float, declared: float, max_duration_s: float | None, why: str) -> None:
    """Decoded audio fell short of the declared duration: raise unless the stream is simply shorter.

    Containers such as WebM declare one duration for the file; an audio track may legally end
    before the video. The packets decide: data that ends early is a truncated file, audio packets
    that cover more than decoded is a corrupt stream, anything else is a short track.
    """
    spans = stream_spans(path)
    if spans.truncated():
        raise MediaDecodeError(str(path), f"audio stream ends at {got:.2f} s and {spans.reason()}{why}")
    covered = spans.audio_s if max_duration_s is None else min(spans.audio_s, max_duration_s)
    if not math.isfinite(covered) or _short(got, covered):
        raise MediaDecodeError(
            str(path), f"audio stream ends at {got:.2f} s of {declared:.2f} s declared: the file is truncated or corrupt{why}")
