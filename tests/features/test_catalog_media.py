"""Folder scans of real media files (issue 16 item 4): same-stem files get unique ids, a video and a
same-stem audio file become one item, and extraction reads the audio from ``audio_path``.

Every file is written here with PyAV (media_corpus.py) or scipy (WAV); nothing is downloaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from media_corpus import VP8, AudioSpec, VideoSpec, write_media

from features.extract import ExtractorConfig, extract_file
from features.store import extract_catalog
from recsys.data import Catalog
from recsys.errors import DataError

FAST = ExtractorConfig(cnn=False, max_frames=4, frame_size=32)


def write_wav(path: Path, freq: float, seconds: float = 1.5, sr: int = 22050) -> Path:
    from scipy.io import wavfile

    t = np.arange(int(seconds * sr)) / sr
    wavfile.write(path, sr, (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16))
    return path


def scan(folder: Path) -> tuple[Catalog, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cat = Catalog.scan(folder)
    return cat, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def rows(cat: Catalog) -> dict[str, tuple[str, str | None]]:
    """item id -> (path relative name, audio file name or None)."""
    return {str(i): (p.name, None if a is None else a.name)
            for i, p, a in zip(cat.item_ids.tolist(), cat.paths, cat.audio_paths)}


def test_video_and_same_stem_audio_are_one_item_with_that_audio(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    video = write_media(media / "example.mp4", "mp4", VideoSpec(), AudioSpec(seconds=2.0))  # own track 330 Hz
    sound = write_wav(media / "example.wav", freq=1200.0)
    lone = write_wav(media / "bird.wav", freq=3000.0)
    cat, notes = scan(media)
    assert rows(cat) == {"bird": ("bird.wav", None), "example": ("example.mp4", "example.wav")}
    assert len(notes) == 1 and "example = example.mp4 + example.wav" in notes[0]

    report = extract_catalog(cat, tmp_path / "features", config=FAST, workers=1, progress=False)
    assert report.n_failed == 0
    items = pl.read_parquet(tmp_path / "features" / "items.parquet")
    got = dict(zip(items["item_id"], items["audio_path"]))
    assert got == {"bird": None, "example": str(sound)}
    audio = np.load(tmp_path / "features" / "audio.npy")
    row = items["item_id"].to_list().index("example")
    assert items["has_video"][row] and items["has_audio"][row]
    # the audio block is the WAV's, not the video's own track
    assert np.allclose(audio[row], extract_file(sound, FAST).blocks["audio"], atol=1e-5)
    assert not np.allclose(audio[row], extract_file(video, FAST).blocks["audio"], atol=1e-2)
    paired = extract_file(video, FAST, audio_path=sound)
    assert paired.info["audio_source"] == str(sound) and paired.info["audio_codec"] == "pcm_s16le"
    assert extract_file(video, FAST).info["audio_codec"] == "aac"
    assert np.allclose(audio[items["item_id"].to_list().index("bird")], extract_file(lone, FAST).blocks["audio"],
                       atol=1e-5)


def test_same_stem_videos_keep_their_extension(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "pond").mkdir(parents=True)
    write_media(media / "frog.mp4", "mp4", VideoSpec(), AudioSpec())
    write_media(media / "frog.webm", "webm", VP8, AudioSpec("libopus", 48000, "mono", 2.0))
    write_media(media / "pond" / "frog.mp4", "mp4", VideoSpec(width=32, height=32), None)  # alone in its folder
    cat, notes = scan(media)
    assert rows(cat) == {"frog.mp4": ("frog.mp4", None), "frog.webm": ("frog.webm", None),
                         "pond/frog": ("frog.mp4", None)}
    assert len(notes) == 1 and "keep their extension in the item id: frog.mp4, frog.webm" in notes[0]
    report = extract_catalog(cat, tmp_path / "features", config=FAST, workers=1, progress=False)
    assert report.n_failed == 0
    items = pl.read_parquet(tmp_path / "features" / "items.parquet")
    assert items["item_id"].to_list() == ["frog.mp4", "frog.webm", "pond/frog"]
    assert items["has_audio"].to_list() == [True, True, False]
    # the catalog written back reads the same (ids, paths, no audio_path column needed)
    cat.to_csv(tmp_path / "catalog.csv")
    again = Catalog.from_csv(tmp_path / "catalog.csv")
    assert rows(again) == rows(cat)


def test_ambiguous_groups_stay_separate_items(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    write_media(media / "talk.mp4", "mp4", VideoSpec(), None)
    write_wav(media / "talk.wav", freq=500.0)
    write_media(media / "talk.flac", "flac", None, AudioSpec("flac", 44100, "mono", 1.0))
    write_wav(media / "rain.wav", freq=700.0)
    write_media(media / "rain.ogg", "ogg", None, AudioSpec("libopus", 48000, "mono", 1.0))
    cat, notes = scan(media)
    # a video with two soundtracks, two audio files: nothing says which belongs to which
    assert set(rows(cat)) == {"talk.mp4", "talk.wav", "talk.flac", "rain.wav", "rain.ogg"}
    assert all(a is None for a in cat.audio_paths)
    assert "5 files share a name" in notes[0] and "paired" not in notes[0]


def test_ids_that_would_still_clash_are_an_error(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    for name in ("a.mp4", "a.webm"):  # ids a.mp4, a.webm
        write_media(media / name, "mp4" if name.endswith("mp4") else "webm",
                    VideoSpec() if name.endswith("mp4") else VP8, None)
    write_wav(media / "a.mp4.wav", freq=440.0)  # id a.mp4 too
    with pytest.raises(DataError, match=r"share the item id 'a.mp4': a.mp4, a.mp4.wav.*catalog CSV"):
        Catalog.scan(media)


def test_audio_path_column_of_a_catalog_csv(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    write_media(media / "mute.mp4", "mp4", VideoSpec(), None)
    write_wav(media / "voice.wav", freq=900.0)
    write_media(media / "other.mp4", "mp4", VideoSpec(), AudioSpec())
    (tmp_path / "catalog.csv").write_text(
        "item_id,path,audio_path,title\n"
        "m,media/mute.mp4,media/voice.wav,muted clip\n"
        f"o,{media / 'other.mp4'},,own sound\n"
    )
    cat = Catalog.from_csv(tmp_path / "catalog.csv")
    assert cat.audio_paths == [media / "voice.wav", None]
    assert cat.metadata.columns == ["item_id", "title"]
    report = extract_catalog(cat, tmp_path / "features", config=FAST, workers=1, progress=False)
    assert report.n_failed == 0
    items = pl.read_parquet(tmp_path / "features" / "items.parquet")
    assert items["has_audio"].to_list() == [True, True]  # the mute video got the WAV's sound
    audio = np.load(tmp_path / "features" / "audio.npy")
    assert np.allclose(audio[0], extract_file(media / "voice.wav", FAST).blocks["audio"], atol=1e-5)


def test_scan_refuses_a_file_and_an_empty_folder(tmp_path: Path) -> None:
    f = write_wav(tmp_path / "one.wav", freq=440.0)
    with pytest.raises(DataError, match="is a file, not a folder"):
        Catalog.scan(f)
    with pytest.raises(DataError, match="not a folder"):
        Catalog.scan(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no media files"):
        Catalog.scan(tmp_path / "empty")
