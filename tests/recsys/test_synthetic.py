"""The embedded demo-catalog generator: real decodable media, a log with planted structure, caching."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import polars as pl
import pytest

from recsys.errors import ConfigError
from recsys.synthetic import (
    CATALOG_COLUMNS,
    COMPLETE_MARKER,
    EVENTS,
    GENERATOR_VERSION,
    INTERACTION_COLUMNS,
    DemoCatalog,
    demo_cache_key,
    ensure_demo_catalog,
    generate_demo_catalog,
)

# Large enough that every one of the 8 clusters holds several items, so the signal check is stable.
PARAMS = dict(n_items=48, n_users=80, seed=3, duration_s=1.5)
TINY = dict(n_items=16, n_users=20, duration_s=0.5)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoCatalog:
    return generate_demo_catalog(tmp_path_factory.mktemp("demo"), workers=2, **PARAMS)


@pytest.fixture(scope="module")
def truth(demo) -> dict:
    return demo.read_truth()


@pytest.fixture(scope="module")
def log(demo) -> pl.DataFrame:
    return pl.read_parquet(demo.interactions)


@pytest.fixture(scope="module")
def catalog(demo) -> pl.DataFrame:
    return pl.read_csv(demo.catalog_csv)


def _read_frames(path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _read_audio(path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    return samples.astype(np.float64), rate


# ------------------------------------------------------------------------------------------ files
def test_layout_and_completion_marker(demo):
    assert demo.complete
    for path in (demo.catalog_csv, demo.interactions, demo.truth, demo.media_dir):
        assert path.exists(), path
    assert len(list(demo.media_dir.glob("*.mp4"))) == PARAMS["n_items"]
    assert not list(demo.media_dir.glob("*.part*"))


def test_every_file_decodes_with_opencv(demo, catalog):
    n_expected = round(PARAMS["duration_s"] * catalog["fps"][0])
    for rel in catalog["path"]:
        frames = _read_frames(demo.root / rel)
        assert abs(len(frames) - n_expected) <= 1, rel
        assert frames[0].shape == (64, 96, 3), rel


def test_every_file_has_h264_and_aac_with_audible_sound(demo, catalog):
    import av

    for rel in catalog["path"]:
        with av.open(str(demo.root / rel)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert video.codec_context.name == "h264"
            assert video.codec_context.pix_fmt == "yuv420p"
            assert audio.codec_context.name == "aac"
            assert audio.rate == 22050 and audio.codec_context.channels == 1
        samples, _ = _read_audio(demo.root / rel)
        rms = float(np.sqrt(np.mean(samples**2)))
        assert rms > 0.05, (rel, rms)
        assert len(samples) >= 0.95 * PARAMS["duration_s"] * 22050


def test_catalog_columns(catalog):
    assert tuple(catalog.columns) == CATALOG_COLUMNS
    assert catalog.height == PARAMS["n_items"]
    assert catalog["item_id"].n_unique() == PARAMS["n_items"]
    assert catalog["item_id"][0] == "i0001"
    assert all(p == f"media/{i}.mp4" for p, i in zip(catalog["path"], catalog["item_id"]))
    assert (catalog["duration_s"] == PARAMS["duration_s"]).all()


def test_words_follow_the_hidden_cluster_with_noise_and_many_items_have_none(catalog, truth):
    from recsys.synthetic import GENRE_WORDS

    tags = [t or "" for t in catalog["tags"].to_list()]
    has = np.array([bool(t) for t in tags])
    assert 0.4 < has.mean() < 0.8  # about 60% with words
    titles = [t or "" for t in catalog["title"].to_list()]
    assert all(bool(t) == h for t, h in zip(titles, has))  # no text means no title either
    cluster = [it["cluster"] for it in truth["items"]]
    own = [any(w in GENRE_WORDS[c] for w in t.split(", ")) for t, c, h in zip(tags, cluster, has) if h]
    assert 0.7 < np.mean(own) < 1.0  # mostly the item's own cluster, with noise


def test_interaction_columns_and_values(log, catalog):
    assert tuple(log.columns) == INTERACTION_COLUMNS
    assert log.schema["user_id"] == pl.String and log.schema["item_id"] == pl.String
    assert log.schema["timestamp"] == pl.Int64 and log.schema["weight"] == pl.Float64
    assert set(log["event"].unique()) <= set(EVENTS)
    assert set(log["item_id"].unique()) == set(catalog["item_id"])  # every item is used
    assert log["user_id"].n_unique() == PARAMS["n_users"]
    assert log["user_id"].str.contains(r"^u\d{4}$").all()
    assert log.select(pl.struct("user_id", "item_id").is_unique().all()).item()
    assert (log["weight"] > 0).all()
    assert log["timestamp"].is_sorted()
    per_user = log.group_by("user_id").len()["len"]
    assert per_user.min() >= 1 and per_user.max() <= PARAMS["n_items"] // 2


def test_truth_contents(truth, log):
    assert truth["generator_version"] == GENERATOR_VERSION
    assert truth["cache_key"] == demo_cache_key(PARAMS)
    assert truth["params"]["n_items"] == PARAMS["n_items"]
    items = truth["items"]
    assert len(items) == PARAMS["n_items"] and len(truth["users"]) == PARAMS["n_users"]
    for key in ("item_id", "cluster", "audio_cluster", "mismatched", "energy", "tone", "popularity", "cold"):
        assert key in items[0]
    k = truth["params"]["n_clusters"]
    assert {it["cluster"] for it in items} == set(range(k))
    mismatched = [it for it in items if it["mismatched"]]
    assert len(mismatched) == round(0.1 * PARAMS["n_items"])
    assert all(it["audio_cluster"] != it["cluster"] for it in mismatched)
    assert all(it["audio_cluster"] == it["cluster"] for it in items if not it["mismatched"])
    taste = np.array([u["taste"] for u in truth["users"]])
    assert taste.shape == (PARAMS["n_users"], k) and np.allclose(taste.sum(1), 1.0, atol=1e-4)
    # Tastes are planted: most of a user's interactions fall in clusters they like.
    cluster = {it["item_id"]: it["cluster"] for it in items}
    uidx = {u["user_id"]: n for n, u in enumerate(truth["users"])}
    liked = [taste[uidx[u], cluster[i]] for u, i in zip(log["user_id"], log["item_id"])]
    assert np.mean(liked) > 2.0 / k


def test_held_back_items_are_cold_at_train_end(truth, log):
    train_end = truth["train_end"]
    assert truth["period_start"] < train_end < truth["period_end"]
    assert log["timestamp"].min() >= truth["period_start"] and log["timestamp"].max() <= truth["period_end"]
    assert not (log["timestamp"] == train_end).any()
    cold = set(truth["cold_item_ids"])
    assert len(cold) == round(0.1 * PARAMS["n_items"])
    assert cold == {it["item_id"] for it in truth["items"] if it["cold"]}
    before = set(log.filter(pl.col("timestamp") < train_end)["item_id"])
    after = set(log.filter(pl.col("timestamp") > train_end)["item_id"])
    assert not cold & before
    assert cold <= after
    warm = {it["item_id"] for it in truth["items"]} - cold
    assert warm <= before and warm <= after


def test_log_loads_into_interactions_and_splits_cold(truth, log):
    from recsys.data.interactions import Interactions

    inter = Interactions.from_arrays(
        log["user_id"].to_numpy(), log["item_id"].to_numpy(), log["weight"].to_numpy(),
        log["timestamp"].to_numpy(),
    )
    assert inter.shape == (PARAMS["n_users"], PARAMS["n_items"]) and inter.nnz == log.height
    train = inter.subset(inter.timestamps <= truth["train_end"])
    seen = set(inter.item_ids[train.item_counts() > 0])
    assert seen.isdisjoint(truth["cold_item_ids"])
    assert len(seen) == PARAMS["n_items"] - len(truth["cold_item_ids"])


# ---------------------------------------------------------------------------------- determinism
def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_whatever_the_workers(demo, tmp_path):
    again = generate_demo_catalog(tmp_path / "again", workers=1, **PARAMS)
    assert _digest(again.interactions) == _digest(demo.interactions)
    assert _digest(again.truth) == _digest(demo.truth)
    assert _digest(again.catalog_csv) == _digest(demo.catalog_csv)
    for path in sorted(demo.media_dir.glob("*.mp4")):
        assert _digest(again.media_dir / path.name) == _digest(path), path.name


def test_other_seed_differs(tmp_path):
    a = generate_demo_catalog(tmp_path / "a", seed=0, workers=1, **TINY)
    b = generate_demo_catalog(tmp_path / "b", seed=1, workers=1, **TINY)
    assert not pl.read_parquet(a.interactions).equals(pl.read_parquet(b.interactions))
    assert a.read_truth()["items"] != b.read_truth()["items"]
    assert _digest(a.media_dir / "i0001.mp4") != _digest(b.media_dir / "i0001.mp4")


# ---------------------------------------------------------------------------------- the signal
def _video_stats(path) -> list[float]:
    import cv2

    frames = _read_frames(path)[::3]
    hsv = cv2.cvtColor(np.concatenate(frames), cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float64)
    hue = hsv[:, 0] * np.pi / 90.0  # OpenCV hue is 0..179 for 0..358 degrees
    sat = hsv[:, 1] / 255.0
    return [np.mean(sat * np.cos(hue)), np.mean(sat * np.sin(hue)), sat.mean()]


def _audio_stats(path) -> list[float]:
    samples, rate = _read_audio(path)
    spec = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1.0 / rate)
    dominant = freqs[np.argmax(spec)]
    centroid = (spec * freqs).sum() / spec.sum()
    return [np.log2(dominant + 1.0), np.log2(centroid)]


def _within_between(x: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    x = (x - x.mean(0)) / (x.std(0) + 1e-12)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    same = groups[:, None] == groups[None]
    off_diag = ~np.eye(len(groups), dtype=bool)
    return float(d[same & off_diag].mean()), float(d[~same].mean())


def test_content_reflects_hidden_cluster(demo, truth):
    items = truth["items"]
    paths = [demo.media_dir / f"{it['item_id']}.mp4" for it in items]
    cluster = np.array([it["cluster"] for it in items])
    video = np.array([_video_stats(p) for p in paths])
    audio = np.array([_audio_stats(p) for p in paths])
    within, between = _within_between(video, cluster)
    assert within < 0.7 * between, (within, between)
    # The taste cluster (with ~10% of sounds from another cluster) still shows in the audio ...
    within, between = _within_between(audio, cluster)
    assert within < 0.8 * between, (within, between)
    # ... and the cluster the sound was actually drawn from shows more clearly.
    within_a, between_a = _within_between(audio, np.array([it["audio_cluster"] for it in items]))
    assert within_a < 0.7 * between_a and within_a <= within


def test_continuous_attribute_drives_motion_and_tempo(truth):
    items = truth["items"]
    energy = np.array([it["energy"] for it in items])
    # Within a cluster, more energy means faster motion and faster notes.
    for key, block in (("speed", "video"), ("tempo_bpm", "audio")):
        vals = np.array([it[block][key] for it in items])
        cl = np.array([it["cluster"] if block == "video" else it["audio_cluster"] for it in items])
        resid_v = vals / np.array([vals[cl == c].mean() for c in cl])
        resid_e = energy - np.array([energy[cl == c].mean() for c in cl])
        assert np.corrcoef(resid_v, resid_e)[0, 1] > 0.5, key


# ------------------------------------------------------------------------------------- caching
def test_cache_key_is_stable_and_sensitive():
    assert demo_cache_key({}) == demo_cache_key({"n_items": 300, "n_users": 1500, "seed": 0})
    assert demo_cache_key({"seed": 1}) != demo_cache_key({"seed": 0})
    assert demo_cache_key({"seed": 1, "workers": 4}) == demo_cache_key({"seed": 1})
    assert len(demo_cache_key({})) == 16


def test_ensure_reuses_and_regenerates_incomplete(tmp_path):
    first = ensure_demo_catalog(tmp_path, workers=1, **TINY)
    assert first.complete and first.root.parent == tmp_path
    assert first.root.name == f"demo-{demo_cache_key(TINY)}"
    mtimes = {p: p.stat().st_mtime_ns for p in first.root.rglob("*") if p.is_file()}

    second = ensure_demo_catalog(tmp_path, workers=1, **TINY)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in second.root.rglob("*") if p.is_file()} == mtimes

    (first.root / COMPLETE_MARKER).unlink()  # as if the first run had been interrupted
    third = ensure_demo_catalog(tmp_path, workers=1, **TINY)
    assert third.complete
    assert all(p.stat().st_mtime_ns != t for p, t in mtimes.items() if p.exists())
    assert [p.name for p in tmp_path.iterdir()] == [first.root.name]  # no temporary folders left

    other = ensure_demo_catalog(tmp_path, workers=1, seed=5, **TINY)
    assert other.root != first.root and other.complete


def test_bad_parameters_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown demo catalog parameter"):
        generate_demo_catalog(tmp_path, n_clusterz=4)
    with pytest.raises(ConfigError, match="n_items"):
        generate_demo_catalog(tmp_path, n_items=10)
    with pytest.raises(ConfigError, match="even"):
        generate_demo_catalog(tmp_path, n_items=20, width=95)
    assert not (tmp_path / COMPLETE_MARKER).exists()


def test_encoding_failure_names_the_file_and_leaves_no_marker(tmp_path, monkeypatch):
    import recsys.synthetic.media as media  # the module whose workers call encode_mp4
    from recsys.errors import AvrecError

    def broken(*args, **kwargs):
        raise RuntimeError("no encoder")

    monkeypatch.setattr(media, "encode_mp4", broken)
    with pytest.raises(AvrecError, match=r"i0001\.part\.mp4|i0001\.mp4.*no encoder"):
        generate_demo_catalog(tmp_path, workers=1, **TINY)
    assert not (tmp_path / COMPLETE_MARKER).exists()
