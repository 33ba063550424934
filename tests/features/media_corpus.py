"""A media robustness corpus, generated with PyAV at test time: what the field actually produces.

Each :class:`Case` writes one small file (a second or two, 64x48 or smaller) and says whether a
correct decoder must extract it (``valid``) or report it (``broken``). Truncated copies of every
container are derived from the valid files. Nothing here is downloaded; files are a few kB each.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MS = fractions.Fraction(1, 1000)


@dataclass(frozen=True)
class VideoSpec:
    """A video stream: codec, size, pixel format and the presentation time of every frame (s)."""

    codec: str = "libx264"
    width: int = 64
    height: int = 48
    pix_fmt: str = "yuv420p"
    rate: int = 24
    times: tuple[float, ...] = tuple(i / 24 for i in range(48))  # 2 s at 24 fps
    options: dict = field(default_factory=dict)
    rotation: int = 0  # display matrix, degrees counter-clockwise


@dataclass(frozen=True)
class AudioSpec:
    """An audio stream: codec, rate, channel layout and length."""

    codec: str = "aac"
    rate: int = 44100
    layout: str = "mono"
    seconds: float = 2.0
    options: dict = field(default_factory=dict)


def _picture(k: int, h: int, w: int) -> np.ndarray:
    """Frame k: a colour ramp that moves, so frames differ and descriptors see motion."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 4 + k * 9) % 256, (y * 5 + k * 3) % 256, np.full_like(x, (k * 17) % 256)], axis=-1)
    return img.astype(np.uint8)


def write_media(path: Path, fmt: str, video: VideoSpec | None = None, audio: AudioSpec | None = None,
                cover: bool = False, container_options: dict | None = None) -> Path:
    """Mux the given streams into ``path`` with PyAV (frames timed in milliseconds, so any frame
    timing, constant or not, can be written)."""
    import av

    with av.open(str(path), "w", format=fmt, options=container_options or {}) as c:
        v = a = pic = None
        if video is not None:
            v = c.add_stream(video.codec, rate=video.rate, options=dict(video.options))
            v.width, v.height, v.pix_fmt = video.width, video.height, video.pix_fmt
            v.time_base = MS
            v.codec_context.time_base = MS
            if video.rotation:
                v.set_display_rotation(video.rotation)
        if audio is not None:
            a = c.add_stream(audio.codec, rate=audio.rate, options=dict(audio.options))
            a.layout = audio.layout
            if audio.codec == "vorbis" or audio.codec == "opus":  # FFmpeg's native encoders are "experimental"
                a.codec_context.options = {**a.codec_context.options, "strict": "experimental"}
        if cover:
            pic = c.add_stream("mjpeg", rate=1)
            pic.width, pic.height, pic.pix_fmt = 32, 32, "yuvj420p"
            pic.disposition = av.stream.Disposition.attached_pic
        if pic is not None:
            frame = av.VideoFrame.from_ndarray(_picture(3, 32, 32), format="rgb24").reformat(format="yuvj420p")
            for packet in pic.encode(frame):
                c.mux(packet)
            for packet in pic.encode():
                c.mux(packet)
        if v is not None:
            for k, t in enumerate(video.times):
                frame = av.VideoFrame.from_ndarray(_picture(k, video.height, video.width), format="rgb24")
                frame = frame.reformat(format=video.pix_fmt)
                frame.pts, frame.time_base = int(round(t * 1000)), MS
                for packet in v.encode(frame):
                    c.mux(packet)
            for packet in v.encode():
                c.mux(packet)
        if a is not None:
            n = int(audio.seconds * audio.rate)
            t = np.arange(n) / audio.rate
            channels = len(av.AudioLayout(audio.layout).channels)
            wave = np.stack([0.3 * np.sin(2 * np.pi * (330 + 110 * ch) * t) for ch in range(channels)])
            wave = wave.astype(np.float32)
            step = a.codec_context.frame_size or 1024
            for start in range(0, n, step):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start:start + step]), format="fltp",
                                                   layout=audio.layout)
                frame.sample_rate, frame.pts = audio.rate, start
                for packet in a.encode(frame):
                    c.mux(packet)
            for packet in a.encode():
                c.mux(packet)
    return path


def truncate(src: Path, dst: Path, keep: float = 0.4) -> Path:
    """The first ``keep`` share of ``src``'s bytes: an interrupted download or copy."""
    data = src.read_bytes()
    dst.write_bytes(data[: max(1, int(len(data) * keep))])
    return dst


@dataclass(frozen=True)
class Case:
    """One corpus file: ``name`` (with extension), how to write it, and whether it must extract.

    ``valid`` False: a correct decoder reports it. ``undetectable``: broken, but nothing in the file
    says so (no header states a length), so the part that is there extracts.
    """

    name: str
    write: Callable[[Path], Path]
    valid: bool
    why: str
    undetectable: bool = False
    streams: str = "av"  # what a valid file yields: "av", "a" (audio only) or "v" (video only)


def _vfr_times() -> tuple[float, ...]:
    """A phone-like variable frame rate: 30 fps bursts, then one frame every 0.4 s, 3 s in all;
    the header says 30 fps, so fps x duration promises 90 frames where 40 exist."""
    burst = [i / 30 for i in range(24)]
    return tuple(burst + [0.8 + 0.14 * i for i in range(16)])


V = VideoSpec()
VP8 = VideoSpec(codec="libvpx", rate=30, times=_vfr_times(), options={"deadline": "realtime", "cpu-used": "8"})


def _cases() -> list[Case]:
    mk = write_media
    valid = [
        Case("cfr_h264_aac.mp4", lambda p: mk(p, "mp4", V, AudioSpec()), True, "baseline H.264 + AAC"),
        Case("vfr_vp8_vorbis.webm", lambda p: mk(p, "webm", VP8, AudioSpec("vorbis", 44100, "stereo", 3.0)), True,
             "variable frame rate, header 30 fps (issue 15's echo-hereweare.webm)"),
        Case("vfr_h264.mkv", lambda p: mk(p, "matroska", VideoSpec(rate=30, times=_vfr_times()), AudioSpec(seconds=3.0)),
             True, "variable frame rate in Matroska"),
        Case("rotated_90.mp4", lambda p: mk(p, "mp4", VideoSpec(rotation=90), AudioSpec()), True,
             "rotation metadata"),
        Case("yuv444p.mp4", lambda p: mk(p, "mp4", VideoSpec(pix_fmt="yuv444p"), AudioSpec()), True,
             "4:4:4 chroma (H.264 High 4:4:4)"),
        Case("yuv420p10le_hevc.mp4", lambda p: mk(p, "mp4", VideoSpec(codec="libx265", pix_fmt="yuv420p10le",
                                                                        options={"x265-params": "log-level=none"}),
                                                  AudioSpec()), True, "10-bit HEVC"),
        Case("gray_ffv1.mkv", lambda p: mk(p, "matroska", VideoSpec(codec="ffv1", pix_fmt="gray")), True,
             "greyscale, lossless, no audio", streams="v"),
        Case("audio_51_48k.mp4", lambda p: mk(p, "mp4", V, AudioSpec("aac", 48000, "5.1")), True, "5.1 audio at 48 kHz"),
        Case("audio_8k_mono.mkv", lambda p: mk(p, "matroska", V, AudioSpec("pcm_s16le", 8000, "mono")), True,
             "8 kHz mono PCM"),
        Case("audio_shorter.webm", lambda p: mk(p, "webm", VideoSpec(codec="libvpx", options={"deadline": "realtime"}),
                                                AudioSpec("libopus", 48000, "mono", 0.8)), True,
             "audio ends at 0.8 s of a 2 s video (WebM: one duration for the file)"),
        Case("audio_shorter.mp4", lambda p: mk(p, "mp4", V, AudioSpec(seconds=0.8)), True, "audio 0.8 s, video 2 s"),
        Case("audio_longer.mp4", lambda p: mk(p, "mp4", VideoSpec(times=V.times[:12]), AudioSpec(seconds=2.0)), True,
             "video 0.5 s, audio 2 s"),
        Case("audio_longer.webm", lambda p: mk(p, "webm", VideoSpec(codec="libvpx", times=V.times[:12],
                                                                     options={"deadline": "realtime"}),
                                               AudioSpec("libopus", 48000, "stereo", 2.0)), True,
             "video 0.5 s, audio 2 s (WebM)"),
        Case("cover_art.mp3", lambda p: mk(p, "mp3", None, AudioSpec("libmp3lame", 44100, "stereo"), cover=True), True,
             "MP3 with an attached cover picture (not a video)", streams="a"),
        Case("opus.ogg", lambda p: mk(p, "ogg", None, AudioSpec("libopus", 48000, "stereo")), True, "Ogg Opus", streams="a"),
        Case("audio.flac", lambda p: mk(p, "flac", None, AudioSpec("flac", 44100, "stereo")), True, "FLAC", streams="a"),
        Case("no_duration.ts", lambda p: mk(p, "mpegts", V, AudioSpec(rate=48000)), True,
             "MPEG-TS: no duration in any header"),
        Case("no_duration_live.webm", lambda p: mk(p, "webm", VideoSpec(codec="libvpx", options={"deadline": "realtime"}),
                                                   AudioSpec("libopus", 48000, "mono"), container_options={"live": "1"}),
             True, "live WebM: no duration element, no cues"),
        Case("mpeg4_mp3.avi", lambda p: mk(p, "avi", VideoSpec(codec="mpeg4"), AudioSpec("libmp3lame", 44100, "stereo")),
             True, "AVI, MPEG-4 part 2 + MP3"),
        Case("one_pixel.mkv", lambda p: mk(p, "matroska", VideoSpec(codec="ffv1", width=1, height=1, pix_fmt="yuv444p"),
                                           AudioSpec()), True, "a 1x1 video"),
    ]
    broken = [Case(f"truncated_{c.name}", (lambda src: lambda p: truncate(src.write(p.with_name("src_" + p.name)), p))(c),
                   False, f"first 40 % of {c.name}", undetectable=c.name in NO_LENGTH, streams=c.streams)
              for c in valid if c.name in TRUNCATED_FROM]
    broken += [
        Case("empty.mp4", lambda p: (p.write_bytes(b""), p)[1], False, "zero bytes"),
        Case("text_renamed.webm", lambda p: (p.write_text("not a video\n" * 40), p)[1], False, "text named .webm"),
        Case("garbage.mkv", lambda p: (p.write_bytes(np.random.default_rng(0).bytes(8192)), p)[1], False, "random bytes"),
    ]
    return valid + broken


#: One truncated copy per container format (the valid cases they are cut from).
TRUNCATED_FROM = ("cfr_h264_aac.mp4", "vfr_vp8_vorbis.webm", "vfr_h264.mkv", "mpeg4_mp3.avi", "cover_art.mp3",
                  "opus.ogg", "audio.flac", "no_duration.ts", "no_duration_live.webm")
#: Formats whose headers state no length: a cut copy cannot be told from a short file.
NO_LENGTH = ("no_duration.ts", "no_duration_live.webm")

CASES = _cases()


def write_corpus(out: Path) -> dict[str, Path]:
    """Write every case into ``out``; returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    return {c.name: c.write(out / c.name) for c in CASES}


def classify(out: Path) -> list[tuple[str, str, str]]:
    """(name, outcome, detail) for every case, outcome "extracted" or "reported" (with the reason)."""
    from features.extract import ExtractorConfig, extract_file
    from recsys.errors import MediaDecodeError

    paths = write_corpus(out)
    config = ExtractorConfig(cnn=False, frame_size=32, max_frames=4)
    rows = []
    for c in CASES:
        try:
            ff = extract_file(paths[c.name], config)
            rows.append((c.name, "extracted", f"audio={ff.has_audio} video={ff.has_video} {ff.duration_s:.2f} s"))
        except MediaDecodeError as exc:
            rows.append((c.name, "reported", exc.reason))
    return rows


if __name__ == "__main__":  # the closing-note numbers: python tests/features/media_corpus.py
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    with tempfile.TemporaryDirectory() as tmp:
        rows = classify(Path(tmp))
    for name, outcome, detail in rows:
        print(f"{name:34s} {outcome:9s} {detail[:110]}")
    n_valid = sum(c.valid for c in CASES)
    ok = sum(o == "extracted" for _, o, _ in rows)
    print(f"{len(CASES)} cases ({n_valid} valid, {len(CASES) - n_valid} broken): {ok} extracted, "
          f"{len(rows) - ok} reported; truncation nobody can detect: "
          f"{[c.name for c in CASES if c.undetectable]}")
