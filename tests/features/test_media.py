"""Decoding: probe, frame sampling, audio resampling and the errors for broken files."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from features.audio_decode import decode_audio
from features.media import probe
from features.video_decode import decode_video, sample_indices
from recsys.errors import MediaDecodeError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
MEDIA = SHARED / "media"


def _manifest() -> list[dict]:
    path = MEDIA / "MANIFEST.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


ROWS = _manifest()


@pytest.fixture
def media_dir() -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"shared media not found at {MEDIA}")
    return MEDIA


def _decode_all(path: Path) -> None:
    """Probe and decode every stream present, as extraction does."""
    info = probe(path)
    if info.has_video:
        decode_video(path, max_short_side=64)
    if info.has_audio:
        decode_audio(path)


# --------------------------------------------------------------------------- sampling plan
def test_sample_indices_rate_and_cap() -> None:
    idx = sample_indices(250, 25.0, fps=1.0, max_frames=16)  # 10 s at 25 fps
    assert idx.tolist() == [12, 37, 62, 87, 112, 137, 162, 187, 212, 237]
    idx = sample_indices(25 * 100, 25.0, fps=1.0, max_frames=16)  # 100 s: capped, spread evenly
    assert len(idx) == 16 and idx[0] < 25 * 7 and idx[-1] > 25 * 93
    assert np.all(np.diff(idx) > 0)
    assert np.ptp(np.diff(idx)) <= 1
    assert sample_indices(24, 24.0).tolist() == [12]  # a 1 s clip: its middle frame
    assert sample_indices(3, 30.0, fps=100.0, max_frames=16).tolist() == [0, 1, 2]  # above native rate
    assert sample_indices(1, 30.0).tolist() == [0]
    assert sample_indices(9, 30.0).tolist() == [4]  # 0.3 s, shorter than half an interval
    assert sample_indices(45, 30.0).tolist() == [15]  # 1.5 s: the partial second interval gives none


# --------------------------------------------------------------------------- real files
@pytest.mark.shared
@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_decode_every_shared_file(media_dir: Path, row: dict) -> None:
    path = media_dir / row["path"]
    info = probe(path)
    assert info.has_video == bool(row["video_codec"])
    assert info.has_audio == bool(row["audio_codec"])
    assert info.duration_s == pytest.approx(float(row["duration_s"]), abs=0.1)
    if info.has_video:
        assert info.size == (int(row["width"]), int(row["height"]))
        clip = decode_video(path, fps=1.0, max_frames=16, max_short_side=112)
        n, h, w, c = clip.frames.shape
        assert clip.frames.dtype == np.uint8 and c == 3
        assert min(h, w) <= 112
        assert 1 <= n <= 16 and abs(n - min(16, math.ceil(float(row["duration_s"])))) <= 1  # 1 frame/s
        assert clip.timestamps.shape == (n,)
        assert np.all(np.diff(clip.timestamps) > 0)
        assert 0 <= clip.timestamps[0] and clip.timestamps[-1] <= float(row["duration_s"]) + 0.05
        assert clip.frames.std() > 1.0  # real pictures, not blank buffers
    else:
        with pytest.raises(MediaDecodeError):
            decode_video(path)
    if info.has_audio:
        track = decode_audio(path)
        assert track.wave.dtype == np.float32 and track.wave.ndim == 1
        assert track.sample_rate == 16000
        assert track.duration_s == pytest.approx(float(row["duration_s"]), abs=0.15)
        assert np.isfinite(track.wave).all() and np.abs(track.wave).max() > 1e-3
    else:
        with pytest.raises(MediaDecodeError, match="no audio stream"):
            decode_audio(path)


@pytest.mark.shared
def test_special_files(media_dir: Path) -> None:
    no_audio = probe(media_dir / "no-audio" / "mmaction2_demo.mp4")
    assert no_audio.has_video and not no_audio.has_audio
    mp3 = probe(media_dir / "moviepy-media" / "crunching.mp3")
    assert mp3.has_audio and not mp3.has_video
    # moviepy's "failing audio" clip decodes completely with PyAV: all 11.23 s of it
    track = decode_audio(media_dir / "moviepy-media" / "video_with_failing_audio.mp4")
    assert track.duration_s == pytest.approx(11.23, abs=0.05) and track.n_decode_errors == 0


@pytest.mark.shared
def test_rate_and_cap_on_real_clip(media_dir: Path) -> None:
    path = media_dir / "video_features-activitynet" / "v_GGSY1Qvo990.mp4"  # 18.2 s, 19.62 fps
    capped = decode_video(path, fps=1.0, max_frames=16, max_short_side=32)
    assert len(capped.frames) == 16
    assert capped.timestamps[0] < 1.2 and capped.timestamps[-1] > 16.5  # spread over the clip
    half = decode_video(path, fps=2.0, max_frames=100, max_short_side=32)
    assert len(half.frames) == 36
    assert np.diff(half.timestamps) == pytest.approx(0.5, abs=0.06)
    slow = decode_video(path, fps=0.25, max_frames=100, max_short_side=32)
    assert len(slow.frames) == 5
    assert np.diff(slow.timestamps) == pytest.approx(4.0, abs=0.06)


@pytest.mark.shared
def test_seeking_gives_the_same_frames(media_dir: Path) -> None:
    path = media_dir / "mdn-learning-area" / "frog.mp4"
    seq = decode_video(path, max_short_side=48)
    seek = decode_video(path, max_short_side=48, seek_min_gap=0)
    assert np.array_equal(seq.indices, seek.indices)
    assert np.abs(seq.frames.astype(int) - seek.frames.astype(int)).mean() < 1.0


@pytest.mark.shared
def test_scan_fallback_for_streams_of_unknown_length(media_dir: Path) -> None:
    """When OpenCV reports no frame count / rate, the whole stream is read and sampled evenly."""
    import cv2

    from features.video_decode import _read_scan

    path = media_dir / "video_features-activitynet" / "v_GGSY1Qvo990.mp4"  # 355 frames
    for native_fps, max_frames in ((19.62, 16), (None, 6), (19.62, 100)):
        cap = cv2.VideoCapture(str(path))
        try:
            idx, frames, ts = _read_scan(cap, native_fps, 1.0, max_frames, 32)
        finally:
            cap.release()
        assert 1 <= len(frames) <= max_frames and len(idx) == len(frames) == len(ts)
        assert np.all(np.diff(idx) > 0) and np.all(np.diff(ts) > 0)
        assert idx[0] < 355 * 0.15 and idx[-1] > 355 * 0.85
    assert len(frames) == 18  # uncapped: one per second


@pytest.mark.shared
def test_max_duration_caps_audio(media_dir: Path) -> None:
    track = decode_audio(media_dir / "mdn-learning-area" / "crystal.mp4", max_duration_s=2.0, sample_rate=8000)
    assert track.wave.shape == (16000,)
    assert track.declared_duration_s > 11


# --------------------------------------------------------------------------- broken files
@pytest.mark.shared
@pytest.mark.parametrize(
    "name",
    [
        "mdn-learning-area/crystal.mp4",  # index first: decodes ~2 s, then the data ends
        "moviepy-media/chaplin.mp4",  # index last: the container does not open
        "mmaction2/test.avi",
        "mdn-learning-area/rabbit320.webm",
    ],
)
def test_truncated_file_raises(media_dir: Path, tmp_path: Path, name: str) -> None:
    data = (media_dir / name).read_bytes()
    path = tmp_path / Path(name).name
    path.write_bytes(data[: len(data) // 5])
    with pytest.raises(MediaDecodeError) as err:
        _decode_all(path)
    assert str(path) in str(err.value) and err.value.path == str(path)


def test_zero_byte_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    for fn in (probe, decode_video, decode_audio):
        with pytest.raises(MediaDecodeError, match="file is empty") as err:
            fn(path)
        assert str(path) in str(err.value)


def test_text_renamed_mp4_raises(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    for fn in (probe, decode_video, decode_audio):
        with pytest.raises(MediaDecodeError) as err:
            fn(path)
        assert str(path) in str(err.value)
    with pytest.raises(MediaDecodeError, match="cannot open container"):
        probe(path)


def test_missing_file_and_folder_raise(tmp_path: Path) -> None:
    with pytest.raises(MediaDecodeError, match="file not found"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(MediaDecodeError, match="not a regular file"):
        decode_audio(tmp_path)


@pytest.mark.shared
def test_unreadable_file_raises(media_dir: Path, tmp_path: Path) -> None:
    import os

    path = tmp_path / "locked.mp3"
    shutil.copy(media_dir / "moviepy-media" / "crunching.mp3", path)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything
            pytest.skip("running as a user who can read mode-000 files")
        with pytest.raises(MediaDecodeError, match="not readable"):
            decode_audio(path)
    finally:
        path.chmod(0o644)
