"""The audio track: the first audio stream decoded with PyAV and resampled to mono float32 (see
:mod:`features.media` for the rules on truncation and audio shorter than the video)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from features.media import (
    AudioTrack,
    _check_file,
    _container_duration,
    _open_container,
    _short,
    _stream_duration,
    stream_spans,
)
from recsys.errors import MediaDecodeError


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
