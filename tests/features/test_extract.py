"""The per-file entry point: config, block dims, modality handling and failure policy."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from features.extract import (
    BLOCKS,
    EXTRACTOR_VERSION,
    ExtractorConfig,
    FileFeatures,
    block_dims,
    extract_file,
)
from recsys.errors import ConfigError, MediaDecodeError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
MEDIA = SHARED / "media"
FAST = ExtractorConfig(cnn=False)


@pytest.fixture
def media_dir() -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"shared media not found at {MEDIA}")
    return MEDIA


def write_clip(path: Path, *, seconds: float = 3.0, video: bool = True, audio: bool = True, freq: float = 440.0) -> Path:
    """A small real MP4 (MPEG-4 Part 2 video, AAC audio) written with PyAV."""
    import av

    fps, sr = 10, 16000
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=fps) if video else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aus = out.add_stream("aac", rate=sr) if audio else None
        if aus is not None:
            aus.layout = "mono"
        if vs is not None:
            for i in range(int(seconds * fps)):
                img = np.zeros((48, 64, 3), np.uint8)
                img[:, :, 1] = 120
                img[10:30, (i * 3) % 48 : (i * 3) % 48 + 16] = 255
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
        if aus is not None:
            t = np.arange(int(seconds * sr)) / sr
            wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
            for start in range(0, wave.size, 1024):
                chunk = wave[start : start + 1024][None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate = sr
                frame.pts = start
                frame.time_base = Fraction(1, sr)
                out.mux(aus.encode(frame))
            out.mux(aus.encode(None))
    return path


def write_wav(path: Path, seconds: float = 2.0, freq: float = 880.0, sr: int = 22050) -> Path:
    from scipy.io import wavfile

    t = np.arange(int(seconds * sr)) / sr
    wavfile.write(path, sr, (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16))
    return path


def check_features(feats: FileFeatures, config: ExtractorConfig) -> None:
    dims = block_dims(config)
    assert set(feats.blocks) <= set(BLOCKS)
    for name, vec in feats.blocks.items():
        assert vec.dtype == np.float32 and vec.ndim == 1 and vec.shape == (dims[name],), name
        assert np.isfinite(vec).all(), name
    want = set()
    if feats.has_audio:
        want.add("audio")
    if feats.has_video:
        want |= {"video_desc"} | ({"video_cnn"} if config.cnn else set())
    assert set(feats.blocks) == want


# --------------------------------------------------------------------------- config
def test_config_key_and_dict() -> None:
    c = ExtractorConfig()
    assert c.key() == ExtractorConfig().key() and len(c.key()) == 16
    assert c.to_dict()["backbone"] == "resnet18" and ExtractorConfig(**c.to_dict()) == c
    assert ExtractorConfig(fps=2.0).key() != c.key()
    assert ExtractorConfig(cnn=False).key() != c.key()
    # runtime-only settings do not invalidate a cache
    assert ExtractorConfig(torch_threads=4, device="cpu").key() == c.key()
    assert ExtractorConfig(cnn=False, backbone="resnet50").key() == ExtractorConfig(cnn=False).key()
    assert isinstance(EXTRACTOR_VERSION, str)


def test_config_key_follows_weights_file(tmp_path: Path) -> None:
    w = tmp_path / "w.pth"
    w.write_bytes(b"1")
    k1 = ExtractorConfig(weights=str(w)).key()
    w.write_bytes(b"22")
    assert ExtractorConfig(weights=str(w)).key() != k1
    copy = tmp_path / "copy.pth"
    copy.write_bytes(b"22")
    assert ExtractorConfig(weights=str(copy)).key() == ExtractorConfig(weights=str(w)).key()


@pytest.mark.parametrize(
    "bad",
    [
        {"fps": 0},
        {"max_frames": 0},
        {"frame_size": 8},
        {"sample_rate": 100},
        {"max_audio_s": -1.0},
        {"torch_threads": 0},
        {"device": "tpu"},
        {"weights": ""},
    ],
)
def test_bad_config_raises(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ExtractorConfig(**bad)


def test_block_dims() -> None:
    assert block_dims(ExtractorConfig()) == {"audio": 79, "video_cnn": 1024, "video_desc": 77}
    assert block_dims(FAST) == {"audio": 79, "video_desc": 77}
    assert block_dims(ExtractorConfig(backbone="resnet50"))["video_cnn"] == 4096


# --------------------------------------------------------------------------- synthetic files
def test_clip_with_audio_and_video(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4")
    config = ExtractorConfig(device="cpu")
    feats = extract_file(path, config)
    assert feats.has_audio and feats.has_video
    assert feats.duration_s == pytest.approx(3.0, abs=0.2)
    assert feats.info["n_frames"] == 3 and feats.info["size"] == [64, 48]
    assert "audio_error" not in feats.info
    check_features(feats, config)
    fast = extract_file(path, FAST)
    check_features(fast, FAST)
    assert np.array_equal(fast.blocks["video_desc"], feats.blocks["video_desc"])
    assert np.array_equal(fast.blocks["audio"], feats.blocks["audio"])


def test_audio_only_and_separate_audio(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "tone.wav")
    feats = extract_file(wav, FAST)
    assert feats.has_audio and not feats.has_video and set(feats.blocks) == {"audio"}
    assert feats.duration_s == pytest.approx(2.0, abs=0.05)
    silent_video = write_clip(tmp_path / "mute.mp4", audio=False)
    alone = extract_file(silent_video, FAST)
    assert alone.has_video and not alone.has_audio and "audio" not in alone.blocks
    paired = extract_file(silent_video, FAST, audio_path=wav)
    assert paired.has_audio and paired.has_video
    assert np.allclose(paired.blocks["audio"], feats.blocks["audio"])
    assert paired.info["audio_source"] == str(wav)


def test_broken_audio_keeps_video_with_reason(tmp_path: Path) -> None:
    video = write_clip(tmp_path / "mute.mp4", audio=False)
    bad_audio = tmp_path / "broken.wav"
    bad_audio.write_text("not audio at all\n" * 20)
    feats = extract_file(video, FAST, audio_path=bad_audio)
    assert feats.has_video and not feats.has_audio and "audio" not in feats.blocks
    assert str(bad_audio) in feats.info["audio_error"]
    # no video to fall back on: the audio error is the file's error
    with pytest.raises(MediaDecodeError, match="cannot open container"):
        extract_file(bad_audio, FAST)


def test_broken_files_raise(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "text.mp4"
    text.write_text("hello\n" * 100)
    clip = write_clip(tmp_path / "clip.mp4", seconds=4.0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 5])
    for path, match in ((empty, "file is empty"), (text, "cannot open container"), (cut, None), (tmp_path / "nope.mp4", "not found")):
        with pytest.raises(MediaDecodeError, match=match) as err:
            extract_file(path, FAST)
        assert err.value.path == str(path) and str(path) in str(err.value)


# --------------------------------------------------------------------------- real files
@pytest.mark.shared
def test_every_shared_file(media_dir: Path) -> None:
    files = sorted(p for p in media_dir.rglob("*") if p.is_file() and p.suffix != ".csv")
    assert len(files) >= 10
    by_name = {}
    for path in files:
        feats = extract_file(path, FAST)
        check_features(feats, FAST)
        by_name[path.name] = feats
    assert not by_name["mmaction2_demo.mp4"].has_audio and by_name["mmaction2_demo.mp4"].has_video
    assert by_name["crunching.mp3"].has_audio and not by_name["crunching.mp3"].has_video
    failing = by_name["video_with_failing_audio.mp4"]
    assert failing.has_audio and failing.has_video and "audio_error" not in failing.info
    others = [f for n, f in by_name.items() if n not in ("mmaction2_demo.mp4", "crunching.mp3")]
    assert all(f.has_audio and f.has_video for f in others)
    # the clips differ from one another
    desc = np.stack([f.blocks["video_desc"] for f in by_name.values() if f.has_video])
    assert np.linalg.matrix_rank(desc) == len(desc)


@pytest.mark.shared
def test_cnn_on_real_clips(media_dir: Path) -> None:
    config = ExtractorConfig(device="cpu", torch_threads=1)
    for name in ("mmaction2/test.avi", "no-audio/mmaction2_demo.mp4"):
        t = time.perf_counter()
        feats = extract_file(media_dir / name, config)
        print(f"\n{name}: {time.perf_counter() - t:.2f} s with cnn, stages {feats.info['seconds']}")
        check_features(feats, config)
    assert extract_file(media_dir / "moviepy-media" / "crunching.mp3", config).blocks.keys() == {"audio"}


@pytest.mark.shared
def test_truncated_real_clip_raises(media_dir: Path, tmp_path: Path) -> None:
    data = (media_dir / "mdn-learning-area" / "frog.mp4").read_bytes()
    path = tmp_path / "frog.mp4"
    path.write_bytes(data[: len(data) // 5])
    with pytest.raises(MediaDecodeError, match="truncated") as err:
        extract_file(path, FAST)
    assert str(path) in str(err.value)
