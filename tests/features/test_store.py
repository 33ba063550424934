"""features.store, features.cache, features.executors: layout, cache, resume after SIGKILL, failures,
worker crashes, executors, real media.

The fake extractor below is module level so spawned workers and the resume subprocess can import
it (``import test_store`` with this folder on sys.path; the tests folders have no __init__.py).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from features.fusion import Fusion
from features import executors
from features.cache import file_sha1
from features.executors import PROCESS_MIN_FILES
from features.store import extract_catalog
from recsys.data import Catalog, ItemFeatures
from recsys.synthetic import write_clip
from recsys.errors import ConfigError, MediaDecodeError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKE_DIMS = {"audio": 4, "video_cnn": 6, "video_desc": 3}


# ------------------------------------------------------------------------------ fake extractor
@dataclass(frozen=True)
class FakeConfig:
    """Stands in for ExtractorConfig: ``key()`` and ``to_dict()`` are all the store uses."""

    delay_s: float = 0.0
    counter: str | None = None  # a file that gets one line per extract call
    torch_threads: int = 1

    def to_dict(self) -> dict:
        return {"delay_s": self.delay_s}

    def key(self) -> str:
        return "fake-v1"


@dataclass
class FakeFileFeatures:
    blocks: dict
    has_audio: bool
    has_video: bool
    duration_s: float
    info: dict = field(default_factory=dict)


def write_fake(path: Path, seed: int, audio: bool = True, video: bool = True, dur: float = 2.0) -> Path:
    path.write_text(f"FAKEMEDIA audio={int(audio)} video={int(video)} dur={dur} seed={seed}\n")
    return path


def fake_vectors(seed: int, audio: bool, video: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = {b: rng.normal(size=d).astype(np.float32) for b, d in FAKE_DIMS.items()}
    return {b: v for b, v in vecs.items() if (audio if b == "audio" else video)}


def fake_extract(path, config=FakeConfig(), audio_path=None) -> FakeFileFeatures:
    if config.counter:
        with open(config.counter, "a") as f:
            f.write(f"{Path(path).name}\n")
    time.sleep(config.delay_s)
    data = Path(path).read_bytes()
    if not data:
        raise MediaDecodeError(str(path), "file is empty")
    if data.startswith(b"CRASH"):
        os.kill(os.getpid(), signal.SIGKILL)  # a decoder segfault, as far as the parent can tell
    if data.startswith(b"BUG"):
        raise RuntimeError("extractor bug")
    if data.startswith(b"BADCONFIG"):
        raise ConfigError("unknown backbone 'resnet1000'")
    if not data.startswith(b"FAKEMEDIA"):
        raise MediaDecodeError(str(path), "not a media container")
    kv = dict(t.split("=") for t in data.decode().split()[1:])
    audio, video = kv["audio"] == "1", kv["video"] == "1"
    blocks = fake_vectors(int(kv["seed"]), audio, video)
    if audio_path is not None:  # a separate audio file: its own seed decides the audio block
        audio = True
        blocks["audio"] = fake_vectors(int(Path(audio_path).read_text()), True, False)["audio"]
    return FakeFileFeatures(blocks, audio, video, float(kv["dur"]))


_IN_FLIGHT = {"now": 0, "max": 0}
_IN_FLIGHT_LOCK = threading.Lock()


def overlap_extract(path, config=FakeConfig(), audio_path=None) -> FakeFileFeatures:
    """fake_extract that records how many calls run at once, and waits (up to 5 s) for a second."""
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT["now"] += 1
        _IN_FLIGHT["max"] = max(_IN_FLIGHT["max"], _IN_FLIGHT["now"])
    try:
        deadline = time.monotonic() + 5
        while _IN_FLIGHT["max"] < 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        return fake_extract(path, config, audio_path)
    finally:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT["now"] -= 1


def calls(counter: Path) -> list[str]:
    return counter.read_text().split() if counter.exists() else []


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture
def fake_catalog(tmp_path) -> Catalog:
    media = tmp_path / "media"
    media.mkdir()
    paths = [
        write_fake(media / "a.mp4", 1),
        write_fake(media / "b.mp4", 2, video=False),  # audio only
        write_fake(media / "c.mp4", 3, audio=False),  # video only
        media / "missing.mp4",  # never existed
        write_fake(media / "d.mp4", 4),
    ]
    (media / "empty.mp4").write_bytes(b"")
    (media / "text.mp4").write_text("just some text, renamed\n")
    paths += [media / "empty.mp4", media / "text.mp4"]
    ids = ["a", "b", "c", "missing", "d", "empty", "text"]
    return Catalog(np.asarray(ids, dtype=object), paths)


def run(catalog, out, **kw):
    kw.setdefault("config", FakeConfig())
    kw.setdefault("extract_fn", fake_extract)
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return extract_catalog(catalog, out, **kw)


# ------------------------------------------------------------------------------ fake-extractor tests
def test_layout_masks_failures_and_fusion(fake_catalog, tmp_path):
    out = tmp_path / "out"
    rep = run(fake_catalog, out)
    assert (rep.n_items, rep.n_ok, rep.n_failed, rep.n_cached) == (7, 4, 3, 0)
    assert rep.exit_code() == 0
    reasons = {i: r for i, _, r in rep.failures}
    assert set(reasons) == {"missing", "empty", "text"}
    assert "not found" in reasons["missing"] and "empty" in reasons["empty"]
    assert "not a media container" in reasons["text"]
    s = rep.summary()
    assert "WARNING: 3 item(s) failed" in s and "missing.mp4" in s
    assert rep.video_seconds == pytest.approx(8.0)

    for name in ("items.parquet", "features.json", "audio.npy", "video_cnn.npy", "video_desc.npy",
                 "fused.npy", "fusion.json", "fusion.npz", "report.json"):
        assert (out / name).exists(), name
    feats = ItemFeatures.load(out)
    assert feats.item_ids.tolist() == ["a", "b", "c", "missing", "d", "empty", "text"]
    assert feats.masks["audio"].tolist() == [True, True, False, False, True, False, False]
    assert feats.masks["video"].tolist() == [True, False, True, False, True, False, False]
    assert feats.block_masks == {"audio": "audio", "video_cnn": "video", "video_desc": "video"}
    np.testing.assert_array_equal(feats.blocks["audio"][1], fake_vectors(2, True, False)["audio"])
    np.testing.assert_array_equal(feats.blocks["video_cnn"][2], fake_vectors(3, False, True)["video_cnn"])
    assert np.all(feats.blocks["audio"][~feats.masks["audio"]] == 0)  # zero AND flagged
    assert feats.fused.shape == (7, 13)
    assert not feats.mask_of("fused")[[3, 5, 6]].any()
    assert feats.provenance["fusion"]["method"] == "concat"
    assert feats.provenance["extractor"]["config_key"] == rep.config_key

    import polars as pl

    items = pl.read_parquet(out / "items.parquet")
    assert items.columns[:3] == ["item_id", "has_audio", "has_video"]
    assert {"path", "duration_s", "status", "error", "content_hash"} <= set(items.columns)
    assert items["status"].to_list() == ["ok", "ok", "ok", "failed", "ok", "failed", "failed"]
    assert items["error"][0] is None and items["duration_s"][0] == 2.0

    # The saved fusion fuses a new item exactly like the stored rows.
    fusion = Fusion.load(out)
    row = fusion.transform_rows({b: feats.blocks[b][0] for b in feats.blocks})
    np.testing.assert_allclose(row[0], feats.fused[0], atol=1e-6)

    # Cache: one entry per content hash (sha1 of the bytes) under cache/<config key>/.
    cache = out / "cache" / rep.config_key
    assert rep.config_key.startswith("fake-v1-")  # custom extract_fn gets its own namespace
    a_hash = hashlib.sha1((fake_catalog.paths[0]).read_bytes()).hexdigest()
    assert file_sha1(fake_catalog.paths[0]) == a_hash
    assert (cache / f"{a_hash}.npz").exists()
    assert len(list(cache.glob("*.npz"))) == 4 and len(list(cache.glob("*.failed.json"))) == 2
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name or p.name.endswith(".running")]


def test_rerun_hits_the_cache_and_failures_are_not_retried(fake_catalog, tmp_path):
    out, counter = tmp_path / "out", tmp_path / "calls.txt"
    cfg = FakeConfig(counter=str(counter))
    first = run(fake_catalog, out, config=cfg)
    assert len(calls(counter)) == 6  # the missing file never reaches the extractor
    fused_first = np.load(out / "fused.npy")
    second = run(fake_catalog, out, config=cfg)
    assert len(calls(counter)) == 6  # nothing recomputed, known-bad files not retried
    assert second.n_cached == 6 and second.n_extracted == 1 and second.video_seconds == 0
    assert second.failures == first.failures
    np.testing.assert_array_equal(np.load(out / "fused.npy"), fused_first)
    run(fake_catalog, out, config=cfg, retry_failed=True)
    assert sorted(calls(counter)[6:]) == ["empty.mp4", "text.mp4"]


def test_unexpected_errors_are_reported_but_not_cached(tmp_path):
    media = tmp_path / "m"
    media.mkdir()
    good = write_fake(media / "good.mp4", 1)
    (media / "bug.mp4").write_bytes(b"BUG")
    cat = Catalog(np.asarray(["g", "b"], dtype=object), [good, media / "bug.mp4"])
    counter = tmp_path / "calls.txt"
    rep = run(cat, tmp_path / "out", config=FakeConfig(counter=str(counter)))
    assert rep.failures[0][0] == "b" and "unexpected error: RuntimeError: extractor bug" in rep.failures[0][2]
    run(cat, tmp_path / "out", config=FakeConfig(counter=str(counter)))
    assert calls(counter) == ["good.mp4", "bug.mp4", "bug.mp4"]  # a fixed bug gets another try


@pytest.mark.parametrize("workers", [1, 2])
def test_config_error_stops_the_run_but_keeps_finished_files(tmp_path, workers):
    media = tmp_path / "m"
    media.mkdir()
    good = write_fake(media / "good.mp4", 1)
    (media / "cfg.mp4").write_bytes(b"BADCONFIG")
    cat = Catalog(np.asarray(["g", "c"], dtype=object), [good, media / "cfg.mp4"])
    with pytest.raises(ConfigError, match="resnet1000"):
        run(cat, tmp_path / "out", workers=workers, executor="threads", config=FakeConfig(delay_s=0.05))
    assert len(list((tmp_path / "out" / "cache").glob("*/*.npz"))) == 1
    left = [p for p in (tmp_path / "out" / "cache").glob("*/*") if ".tmp-" in p.name or ".running" in p.name]
    assert not left


def test_changed_content_is_extracted_again(tmp_path):
    media = tmp_path / "m"
    media.mkdir()
    a, b = write_fake(media / "a.mp4", 1, audio=False), write_fake(media / "b.mp4", 2, audio=False)
    sound = media / "b.wav"
    sound.write_text("5")
    cat = Catalog(np.asarray(["a", "b"], dtype=object), [a, b], audio_paths=[None, sound])
    counter, out = tmp_path / "calls.txt", tmp_path / "out"
    cfg = FakeConfig(counter=str(counter))
    run(cat, out, config=cfg)
    feats = ItemFeatures.load(out)
    assert feats.masks["audio"].tolist() == [False, True]  # audio from the separate file
    np.testing.assert_array_equal(feats.blocks["audio"][1], fake_vectors(5, True, False)["audio"])
    write_fake(a, 11, audio=False)  # new bytes at the same path
    sound.write_text("6")  # the separate audio file is part of b's content hash
    rep = run(cat, out, config=cfg)
    assert rep.n_cached == 0 and calls(counter) == ["a.mp4", "b.mp4", "a.mp4", "b.mp4"]
    feats = ItemFeatures.load(out)
    np.testing.assert_array_equal(feats.blocks["video_cnn"][0], fake_vectors(11, False, True)["video_cnn"])
    np.testing.assert_array_equal(feats.blocks["audio"][1], fake_vectors(6, True, False)["audio"])
    assert run(cat, out, config=cfg).n_cached == 2


def test_bad_arguments(fake_catalog, tmp_path):
    from recsys.errors import DataError

    with pytest.raises(ConfigError, match="workers"):
        run(fake_catalog, tmp_path / "out", workers=0)
    with pytest.raises(ConfigError, match="executor must be one of 'auto', 'threads', 'processes'"):
        run(fake_catalog, tmp_path / "out", executor="fork")
    with pytest.raises(DataError, match="no items"):
        run(Catalog(np.asarray([], dtype=object), []), tmp_path / "out")


def test_identical_files_are_extracted_once(tmp_path):
    media = tmp_path / "m"
    media.mkdir()
    p1, p2 = write_fake(media / "x.mp4", 7), write_fake(media / "copy_of_x.mp4", 7)
    counter = tmp_path / "calls.txt"
    cat = Catalog(np.asarray([10, 20]), [p1, p2])
    rep = run(cat, tmp_path / "out", config=FakeConfig(counter=str(counter)), fusion=None)
    assert rep.n_ok == 2 and len(calls(counter)) == 1
    feats = ItemFeatures.load(tmp_path / "out")
    assert feats.item_ids.tolist() == [10, 20] and feats.fused is None
    np.testing.assert_array_equal(feats.blocks["audio"][0], feats.blocks["audio"][1])


def test_all_failed_gives_nonzero_exit(tmp_path):
    media = tmp_path / "m"
    media.mkdir()
    (media / "empty.mp4").write_bytes(b"")
    cat = Catalog(np.asarray(["e", "gone"], dtype=object), [media / "empty.mp4", media / "gone.mp4"])
    rep = run(cat, tmp_path / "out")
    assert rep.n_ok == 0 and rep.n_failed == 2 and rep.exit_code() != 0
    assert "ERROR: no item could be extracted" in rep.summary()
    feats = ItemFeatures.load(tmp_path / "out")  # still a valid, aligned (all-missing) folder
    assert feats.n_items == 2 and feats.fused is None


def test_pool_survives_a_crashing_worker(fake_catalog, tmp_path):
    crash = fake_catalog.paths[0].parent / "crash.mp4"
    crash.write_bytes(b"CRASH")
    cat = Catalog(
        np.asarray([*fake_catalog.item_ids.tolist(), "crash"], dtype=object), [*fake_catalog.paths, crash]
    )
    rep = run(cat, tmp_path / "out", workers=2, executor="processes")
    reasons = {i: r for i, _, r in rep.failures}
    assert set(reasons) == {"missing", "empty", "text", "crash"}
    assert "worker process died" in reasons["crash"]
    assert rep.n_ok == 4 and rep.exit_code() == 0 and (rep.executor, rep.workers) == ("processes", 2)
    # Same vectors as an in-process run.
    ref = run(fake_catalog, tmp_path / "ref")
    got, want = ItemFeatures.load(tmp_path / "out"), ItemFeatures.load(tmp_path / "ref")
    for b in want.blocks:
        np.testing.assert_array_equal(got.blocks[b][:7], want.blocks[b])
    assert ref.n_ok == 4
    # The crash is cached like a decode failure: the next run does not crash again.
    again = run(cat, tmp_path / "out", workers=2, executor="processes")
    assert again.n_cached == 7 and "worker process died" in dict((i, r) for i, _, r in again.failures)["crash"]


def test_threads_give_the_same_output_as_one_worker(fake_catalog, tmp_path):
    counter = tmp_path / "calls.txt"
    ref = run(fake_catalog, tmp_path / "ref")
    _IN_FLIGHT.update(now=0, max=0)
    got = run(fake_catalog, tmp_path / "thr", workers=2, executor="threads", extract_fn=overlap_extract,
              config=FakeConfig(counter=str(counter)))
    assert _IN_FLIGHT["max"] == 2  # two files at once, never more
    assert (got.executor, got.workers) == ("threads", 2) and (ref.executor, ref.workers) == ("in-process", 1)
    assert sorted(calls(counter)) == sorted(p.name for p in fake_catalog.paths if p.name != "missing.mp4")
    assert (got.n_ok, got.n_failed, got.failures) == (ref.n_ok, ref.n_failed, ref.failures)
    a, b = ItemFeatures.load(tmp_path / "ref"), ItemFeatures.load(tmp_path / "thr")
    for name in a.blocks:
        np.testing.assert_array_equal(b.blocks[name], a.blocks[name])
    np.testing.assert_array_equal(b.fused, a.fused)
    assert {m: b.masks[m].tolist() for m in b.masks} == {m: a.masks[m].tolist() for m in a.masks}
    cache = tmp_path / "thr" / "cache" / got.config_key
    assert len(list(cache.glob("*.npz"))) == 4 and len(list(cache.glob("*.failed.json"))) == 2
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name or p.name.endswith(".running")]
    again = run(fake_catalog, tmp_path / "thr", workers=2, executor="threads", extract_fn=overlap_extract,
                config=FakeConfig(counter=str(counter)))
    assert again.n_cached == 6 and again.executor == "none" and len(calls(counter)) == 6


def test_auto_executor_rule(monkeypatch):
    monkeypatch.setattr(executors, "_default_workers", lambda: 4)
    plan = executors.plan
    assert plan(0, None, "auto", False) == ("none", 0)
    assert plan(10, None, "auto", False) == ("threads", 4)  # small job: no process start-up
    assert plan(3, None, "auto", False) == ("threads", 3)  # never more workers than files
    assert plan(1, None, "auto", False) == ("in-process", 1)
    assert plan(PROCESS_MIN_FILES - 1, None, "auto", False) == ("threads", 4)
    assert plan(PROCESS_MIN_FILES, None, "auto", False) == ("processes", 4)  # large: crash isolation
    assert plan(PROCESS_MIN_FILES, 1, "auto", False) == ("in-process", 1)  # workers=1: this process
    assert plan(5, None, "auto", True) == ("processes", 4)  # the last run died in a file
    assert plan(1, None, "auto", True) == ("processes", 1)
    assert plan(10, 2, "threads", True) == ("threads", 2)
    assert plan(10, 1, "processes", False) == ("processes", 1)  # asked for: isolation even for one
    assert plan(10, 2, "processes", False) == ("processes", 2)


def test_auto_isolates_a_file_that_crashed_the_threaded_run(fake_catalog, tmp_path):
    crash = fake_catalog.paths[0].parent / "crash.mp4"
    crash.write_bytes(b"CRASH")
    ids, paths = [*fake_catalog.item_ids.tolist(), "crash"], [*fake_catalog.paths, crash]
    out = tmp_path / "out"
    script = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]);"
        "from test_store import FakeConfig, fake_extract;"
        "from recsys.data import Catalog; from features.store import extract_catalog;"
        "extract_catalog(Catalog(np.asarray(sys.argv[3].split(','), dtype=object), sys.argv[4].split(',')),"
        " sys.argv[2], FakeConfig(), workers=2, executor='threads', progress=False, extract_fn=fake_extract)"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(HERE), str(out), ",".join(ids),
                           ",".join(map(str, paths))], cwd=ROOT, timeout=120)
    assert proc.returncode == -signal.SIGKILL  # threads share the process: the crash ends the run
    rep = run(Catalog(np.asarray(ids, dtype=object), paths), out, workers=None)
    assert rep.executor == "processes"  # the crashed run left its in-flight markers
    reasons = {i: r for i, _, r in rep.failures}
    assert set(reasons) == {"missing", "empty", "text", "crash"} and "worker process died" in reasons["crash"]
    assert rep.n_ok == 4
    again = run(Catalog(np.asarray(ids, dtype=object), paths), out, workers=None)
    assert again.executor == "none" and again.n_cached == 7


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    media = tmp_path / "m"
    media.mkdir()
    paths = [write_fake(media / f"f{k:02d}.mp4", k) for k in range(20)]
    cat = Catalog(np.asarray([f"i{k}" for k in range(20)], dtype=object), paths)
    run(cat, tmp_path / "out", progress=True, workers=2, executor="threads")
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert lines[0] == "features: extracting 20 files"
    assert lines[1].startswith("features: 2/20 files (10%), ")
    assert lines[-1].startswith("features: 20/20 files (100%)")
    assert len(lines) == 11  # start + every 10 %
    run(cat, tmp_path / "out", progress=True)
    assert capsys.readouterr().err == ""  # all cached: nothing to report until the summary


def test_resume_after_sigkill(tmp_path):
    media = tmp_path / "m"
    media.mkdir()
    paths = [write_fake(media / f"f{k:02d}.mp4", k, audio=k % 3 != 0, video=k % 3 != 1) for k in range(12)]
    ids = [f"item{k}" for k in range(12)]
    out, counter = tmp_path / "out", tmp_path / "calls.txt"
    script = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]);"
        "from test_store import FakeConfig, fake_extract;"
        "from recsys.data import Catalog; from features.store import extract_catalog;"
        "ids = sys.argv[4].split(','); paths = sys.argv[5].split(',');"
        "extract_catalog(Catalog(np.asarray(ids, dtype=object), paths), sys.argv[2],"
        " FakeConfig(delay_s=0.3, counter=sys.argv[3]), workers=1, progress=False, extract_fn=fake_extract)"
    )
    args = [str(HERE), str(out), str(counter), ",".join(ids), ",".join(map(str, paths))]
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            done = list(out.glob("cache/fake-v1-*/*.npz"))
            if len(done) >= 4 or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the extraction finished before it could be killed; slow the fake"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("cache/fake-v1-*/*.npz")}
    assert 4 <= len(done) < 12
    assert not (out / "items.parquet").exists()
    n_first = len(calls(counter))

    rep = run(Catalog(np.asarray(ids, dtype=object), paths), out, config=FakeConfig(counter=str(counter)))
    # Every item present, nothing lost, finished files not recomputed.
    assert rep.n_ok == 12 and rep.n_failed == 0
    assert rep.n_cached == len(done)
    assert len(calls(counter)) - n_first == 12 - len(done)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("cache/fake-v1-*/*.npz")}
    assert len(after) == 12
    assert all(after[name] == mtime for name, mtime in done.items())
    assert not [p for p in out.glob("cache/*/*") if ".tmp-" in p.name or p.name.endswith(".running")]
    feats = ItemFeatures.load(out)
    assert feats.item_ids.tolist() == ids
    for k in range(12):
        assert feats.masks["video"][k] == (k % 3 != 1) and feats.masks["audio"][k] == (k % 3 != 0)
        assert np.any(feats.blocks["video_desc"][k] != 0) == (k % 3 != 1)
        if k % 3 != 0:
            np.testing.assert_array_equal(feats.blocks["audio"][k], fake_vectors(k, True, True)["audio"])


# ------------------------------------------------------------------------------ real media


@pytest.fixture
def real_extract():
    try:
        from features import extract
    except ImportError as e:  # the extractor is written in parallel; until then test the fake only
        pytest.skip(f"features.extract not importable: {e}")
    return extract


def test_real_media_failures_and_exit_codes(real_extract, tmp_path, monkeypatch):
    media = tmp_path / "media"
    media.mkdir()
    good = [write_clip(media / f"clip{k}.mp4", seed=k) for k in range(3)]
    data = good[0].read_bytes()
    (media / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (media / "zero.mp4").write_bytes(b"")
    (media / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    bad = [media / "truncated.mp4", media / "zero.mp4", media / "notes.mp4"]
    cat = Catalog(np.asarray(["c0", "trunc", "c1", "zero", "c2", "text"], dtype=object),
                  [good[0], bad[0], good[1], bad[1], good[2], bad[2]])
    config = real_extract.ExtractorConfig()
    rep = extract_catalog(cat, tmp_path / "out", config, workers=1, progress=False)
    reasons = {i: r for i, _, r in rep.failures}
    assert set(reasons) == {"trunc", "zero", "text"}, rep.summary()
    assert all(r and r.strip() for r in reasons.values())
    assert rep.n_ok == 3 and rep.exit_code() == 0
    assert rep.config_key == config.key()
    feats = ItemFeatures.load(tmp_path / "out")
    dims = real_extract.block_dims(config)
    assert {b: feats.blocks[b].shape[1] for b in feats.blocks} == dims
    assert feats.masks["audio"].tolist() == [True, False, True, False, True, False]
    assert feats.masks["video"].tolist() == feats.masks["audio"].tolist()
    assert feats.fused.shape[0] == 6 and np.isfinite(feats.fused).all()
    assert feats.provenance["extractor"]["version"] == real_extract.EXTRACTOR_VERSION
    # distinct clips give distinct vectors
    assert not np.allclose(feats.fused[0], feats.fused[2])

    # Threads (the default for a small catalog) give bit-identical vectors, CNN included, with the
    # model built afresh (before the threads start: features.video's cache has no lock).
    from features import video

    monkeypatch.setattr(video, "_MODELS", {})
    thr = extract_catalog(cat, tmp_path / "threads", config, workers=2, progress=False)
    assert len(video._MODELS) == 1
    assert (thr.executor, thr.workers, thr.n_ok, thr.n_cached) == ("threads", 2, 3, 0)
    assert thr.failures == rep.failures
    got = ItemFeatures.load(tmp_path / "threads")
    for name in feats.blocks:
        np.testing.assert_array_equal(got.blocks[name], feats.blocks[name])
    np.testing.assert_array_equal(got.fused, feats.fused)

    # Spawned workers give the same vectors as the in-process run. (cnn=False: no torch import
    # in the workers, which would cost seconds per process on a small test machine.)
    light = real_extract.ExtractorConfig(cnn=False)
    solo = extract_catalog(cat, tmp_path / "light1", light, workers=1, progress=False)
    pool = extract_catalog(cat, tmp_path / "light2", light, workers=2, progress=False, executor="processes")
    assert solo.n_ok == pool.n_ok == 3 and pool.n_cached == 0
    assert {i for i, _, _ in pool.failures} == {"trunc", "zero", "text"}
    a, b = ItemFeatures.load(tmp_path / "light1"), ItemFeatures.load(tmp_path / "light2")
    assert set(a.blocks) == {"audio", "video_desc"}
    for name in a.blocks:
        np.testing.assert_allclose(b.blocks[name], a.blocks[name], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.blocks[name], feats.blocks[name], rtol=1e-5, atol=1e-6)

    only_bad = Catalog(np.asarray(["trunc", "zero", "text"], dtype=object), bad)
    rep_bad = extract_catalog(only_bad, tmp_path / "out_bad", config, workers=1, progress=False)
    assert rep_bad.n_ok == 0 and rep_bad.exit_code() != 0
