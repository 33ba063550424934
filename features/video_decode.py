"""Sampled video frames: OpenCV ``VideoCapture`` at a fixed rate, checked against what the container
declares (see :mod:`features.media` for the rules on truncation and variable frame rates)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from features.media import (
    DRIFT_TOLERANCE_S,
    SEEK_MIN_GAP,
    TRUNCATION_TOLERANCE,
    VideoFrames,
    _check_file,
    _positive,
    _short,
    stream_spans,
)
from recsys.errors import MediaDecodeError


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
