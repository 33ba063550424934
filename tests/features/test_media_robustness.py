"""Media the field produces: every corpus case (media_corpus.py) extracts or is reported with a
reason, one file at a time and through the feature store (failure manifest, batch goes on); and
every file under ../shared/data/media extracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.extract import ExtractorConfig, extract_file
from features.media import probe, stream_spans
from features.video_decode import decode_video
from recsys.errors import MediaDecodeError

from media_corpus import CASES, write_corpus

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "data" / "media"
CONFIG = ExtractorConfig(cnn=False, frame_size=32, max_frames=4)
BY_NAME = {c.name: c for c in CASES}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_extracts_or_is_reported(corpus, case) -> None:
    path = corpus[case.name]
    if case.valid or case.undetectable:
        ff = extract_file(path, CONFIG)
        assert (ff.has_audio, ff.has_video) == ("a" in case.streams, "v" in case.streams), case.why
        assert all(np.isfinite(v).all() for v in ff.blocks.values())
        assert np.isfinite(ff.duration_s) and ff.duration_s > 0
        if case.undetectable:  # what is left of a cut file with no stated length: shorter than the source
            assert ff.duration_s < extract_file(path.with_name("src_" + path.name), CONFIG).duration_s - 0.5
    else:
        with pytest.raises(MediaDecodeError) as err:
            extract_file(path, CONFIG)
        assert err.value.path == str(path) and len(err.value.reason) > 10


@pytest.mark.parametrize("name", ["vfr_vp8_vorbis.webm", "vfr_h264.mkv"])
def test_variable_frame_rate_is_sampled_over_its_whole_length(corpus, name) -> None:
    info = probe(corpus[name])
    assert info.fps == 30 and abs(info.n_frames - 90) <= 1  # the header promises 3 s at 30 fps; 40 frames exist
    clip = decode_video(corpus[name], fps=1.0, max_frames=16)
    assert len(clip.frames) == 3 and clip.timestamps[-1] > 2.4  # one frame a second of the 3 s
    assert clip.duration_s == pytest.approx(3.0, abs=0.1)
    assert np.all(np.diff(clip.timestamps) > 0) and np.all(np.diff(clip.indices) > 0)
    # the frames are the ones shown at those times (the ramp advances 9 grey levels a frame)
    assert len({int(f[0, 0, 0]) for f in clip.frames}) == 3


def test_rotation_metadata_is_applied(corpus) -> None:
    upright = decode_video(corpus["cfr_h264_aac.mp4"])
    turned = decode_video(corpus["rotated_90.mp4"])
    assert upright.frames.shape[1:3] == (48, 64) and turned.frames.shape[1:3] == (64, 48)


def test_stream_spans_tell_a_cut_file_from_a_short_track(corpus) -> None:
    short = stream_spans(corpus["audio_shorter.webm"])
    assert short.audio_s == pytest.approx(0.8, abs=0.1) and not short.truncated()
    cut = stream_spans(corpus["truncated_vfr_vp8_vorbis.webm"])
    assert cut.truncated() and "truncated" in cut.reason()


def test_store_reports_broken_files_and_goes_on(corpus, tmp_path) -> None:
    from features.store import extract_catalog
    from recsys.data import Catalog

    names = sorted(corpus)
    catalog = Catalog(names, [corpus[n] for n in names])
    report = extract_catalog(catalog, tmp_path / "features", config=CONFIG, workers=1, progress=False)
    reported = {c.name for c in CASES if not c.valid and not c.undetectable}
    assert {f[0] for f in report.failures} == reported
    assert report.n_ok == len(names) - len(reported)
    items = pl.read_parquet(tmp_path / "features" / "items.parquet")
    failed = items.filter(pl.col("status") == "failed")
    assert set(failed["item_id"]) == reported and failed["error"].str.len_chars().min() > 10
    assert not (failed["has_audio"].any() or failed["has_video"].any())


@pytest.mark.shared
def test_every_shared_media_file_extracts(tmp_path) -> None:
    if not MEDIA.is_dir():
        pytest.skip(f"shared media not found at {MEDIA}")
    from features.store import extract_catalog
    from recsys.data import Catalog

    files = sorted(p for p in MEDIA.rglob("*") if p.is_file() and p.suffix.lower() != ".csv")
    catalog = Catalog([str(p.relative_to(MEDIA)) for p in files], files)
    report = extract_catalog(catalog, tmp_path / "features", config=CONFIG, workers=1, progress=False)
    assert report.failures == [] and report.n_ok == len(files) >= 11
