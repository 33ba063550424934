"""Self-supervised media encoders: media cache, checkpoints, training, features integration.

Everything runs on a tiny generated demo catalog (24 items of 1.5 s, 4 hidden clusters) plus one
broken media file, with one torch thread, on CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from recsys.data import Catalog
from recsys.data.item_features import ItemFeatures
from recsys.errors import BundleError, DataError
from recsys.synthetic import generate_demo_catalog
from training.audio_autoencoder import (
    AudioAEConfig,
    AudioAutoencoder,
    MaskedPatchSampler,
    masked_reconstruction_loss,
    mean_by_item,
)
from training.av_correspondence import (
    AVConfig,
    AVCorrespondence,
    CorrespondenceSampler,
    OtherClipNegatives,
    correspondence_accuracy,
    correspondence_loss,
)
from training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from training.encoders import BLOCKS, EncoderConfig, load_encoders, train_encoders
from training.ssl_data import MediaCache, MediaCacheConfig, build_media_cache, logmel_patches
from training.trainer import TrainerConfig, train

BROKEN = "broken"


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    """24 real clips and one zero-byte 'video' whose decoding fails."""
    root = tmp_path_factory.mktemp("ssl_demo")
    demo = generate_demo_catalog(root, n_items=24, n_users=20, duration_s=1.5, n_clusters=4, workers=1)
    cat = Catalog.from_csv(demo.catalog_csv)
    (root / "media" / "broken.mp4").write_bytes(b"")
    return Catalog(
        np.asarray(cat.item_ids.tolist() + [BROKEN], dtype=object),
        cat.paths + [root / "media" / "broken.mp4"],
    )


@pytest.fixture(scope="module")
def cache(catalog, tmp_path_factory) -> MediaCache:
    return build_media_cache(catalog, tmp_path_factory.mktemp("cache") / "media.npz")


def _features_dir(catalog: Catalog, path: Path) -> Path:
    """A features folder as `avrec features` writes it: the broken item failed, one item lacks audio."""
    n = len(catalog)
    ids = catalog.item_ids
    has_video = np.array([i != BROKEN for i in ids])
    has_audio = has_video.copy()
    has_audio[3] = False  # e.g. an audio track that did not decode: the video was kept
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(n, 5)).astype(np.float32) * has_audio[:, None]
    video = rng.normal(size=(n, 7)).astype(np.float32) * has_video[:, None]
    feats = ItemFeatures(ids, {"audio": audio, "video_desc": video}, {"audio": has_audio, "video": has_video},
                         block_masks={"audio": "audio", "video_desc": "video"}, provenance={"extractor": {"x": 1}})
    extra = {
        "path": [str(p) for p in catalog.paths],
        "duration_s": [None if i == BROKEN else 1.5 for i in ids],
        "status": ["failed" if i == BROKEN else "ok" for i in ids],
        "error": ["file is empty" if i == BROKEN else None for i in ids],
    }
    return feats.save(path, extra_columns=extra)


def _small_ae(**kw) -> AudioAutoencoder:
    return AudioAutoencoder(AudioAEConfig(dim=16, width=16, **kw))


def _small_av(**kw) -> AVCorrespondence:
    return AVCorrespondence(AVConfig(dim=16, audio_width=16, vision_width=8, hidden=32, **kw))


# ------------------------------------------------------------------------------------ media cache
def test_media_cache_shapes_index_and_failures(catalog, cache):
    cfg = cache.config
    n = len(catalog)
    assert cache.item_ids.tolist() == [str(i) for i in catalog.item_ids]
    assert cache.has_audio[:-1].all() and cache.has_video[:-1].all()
    assert not cache.has_audio[-1] and not cache.has_video[-1]
    assert [f[0] for f in cache.failures] == [BROKEN] and "empty" in cache.failures[0][2]
    # 1.5 s -> 151 log-mel frames -> patches starting at 0 and 48
    assert cache.patches.shape == (2 * (n - 1), cfg.patch_frames, cfg.n_mels)
    assert cache.patches.dtype == np.float32 and np.isfinite(cache.patches).all()
    assert cache.frames.shape == (cfg.frames_per_clip * (n - 1), cfg.frame_size, cfg.frame_size, 3)
    assert cache.frames.dtype == np.uint8
    assert (np.diff(cache.patch_item) >= 0).all() and (np.diff(cache.frame_item) >= 0).all()
    off = cache.frame_offsets()
    assert off[0] == 0 and off[-1] == len(cache.frames) and off[-1] == off[-2]  # broken item: none
    ts = cache.frame_time_s[off[0] : off[1]]
    assert (np.diff(ts) > 0).all() and 0 < ts[0] and ts[-1] < 1.5  # spread over the clip


def test_media_cache_round_trip_and_reuse(catalog, cache, tmp_path):
    path = cache.save(tmp_path / "c.npz")
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert "patches" in z.files
    again = MediaCache.load(path)
    for k in ("item_ids", "has_audio", "has_video", "patches", "patch_item", "frames", "frame_item", "frame_time_s"):
        np.testing.assert_array_equal(getattr(again, k), getattr(cache, k))
    assert again.failures == cache.failures and again.config == cache.config
    mtime = path.stat().st_mtime_ns
    reused = build_media_cache(catalog, path)  # same media and settings: not decoded again
    assert path.stat().st_mtime_ns == mtime and reused.fingerprint == cache.fingerprint
    rebuilt = build_media_cache(catalog, path, frames_per_clip=2)  # other settings: rebuilt
    assert rebuilt.frames.shape[0] == 2 * (len(catalog) - 1) and rebuilt.fingerprint != cache.fingerprint


def test_logmel_patches_tile_short_clips_and_cap_count():
    short = np.arange(30 * 4, dtype=np.float32).reshape(30, 4)
    p, starts = logmel_patches(short, 96, 48, 8)
    assert p.shape == (1, 96, 4) and starts.tolist() == [0]
    np.testing.assert_array_equal(p[0, 30:60], short)  # tiled, not padded with silence
    long = np.zeros((2000, 4), np.float32)
    p, starts = logmel_patches(long, 96, 48, 5)
    assert p.shape == (5, 96, 4) and starts[0] == 0 and starts[-1] == 2000 - 96 - (2000 - 96) % 48


def test_other_clip_negatives_never_pick_the_anchor():
    patch_item = np.array([0, 0, 1, 3, 3, 3])  # item 2 has no audio
    neg = OtherClipNegatives(patch_item, 4)
    rng = np.random.default_rng(0)
    anchors = np.repeat(np.array([0, 1, 2, 3]), 200)
    drawn = patch_item[neg.draw(anchors, rng)]
    assert (drawn != anchors).all() and set(drawn.tolist()) == {0, 1, 3}


# ------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("build", [_small_ae, _small_av])
def test_checkpoint_rebuilds_from_file_alone(build, cache, tmp_path):
    model = build(seed=7)
    if isinstance(model, AudioAutoencoder):
        model.set_input_stats(cache.patches)
    else:
        model.set_input_stats(cache.patches, cache.frames)
    with torch.no_grad():  # move the weights away from their seeded init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(model, tmp_path / "m.pt", meta={"losses": [1.0, 0.5]})
    payload = torch.load(path, weights_only=True)  # only tensors and plain containers
    assert payload["class"] == type(model).__name__ and payload["config"]["seed"] == 7
    assert payload["meta"] == {"losses": [1.0, 0.5]}
    loaded = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    np.testing.assert_array_equal(loaded.embed_patches(cache.patches), model.embed_patches(cache.patches))
    if isinstance(model, AVCorrespondence):
        np.testing.assert_array_equal(loaded.embed_frames(cache.frames), model.embed_frames(cache.frames))
        with torch.no_grad():
            fr, pa = torch.from_numpy(cache.frames[:8]), torch.from_numpy(cache.patches[:8])
            torch.testing.assert_close(loaded(fr, pa), model(fr, pa), rtol=0, atol=0)


def test_checkpoint_errors(tmp_path, cache):
    with pytest.raises(BundleError, match="not found"):
        read_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BundleError, match="cannot read"):
        read_checkpoint(tmp_path / "junk.pt")
    path = save_checkpoint(_small_ae(), tmp_path / "ae.pt")
    with pytest.raises(BundleError, match="expected a AVCorrespondence"):
        load_checkpoint(path, expected_class="AVCorrespondence")
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(BundleError, match="newer"):
        read_checkpoint(tmp_path / "future.pt")


# ------------------------------------------------------------------------------------ training
def test_autoencoder_loss_decreases(cache):
    model = _small_ae()
    model.set_input_stats(cache.patches)
    sampler = MaskedPatchSampler(cache.patches, model.config.mask_frames, model.config.mask_bands)
    hist = train(model, sampler, masked_reconstruction_loss,
                 TrainerConfig(epochs=8, batch_size=8, lr=3e-3, device="cpu"), log=None)
    assert len(hist.losses) == 8 and all(np.isfinite(hist.losses))
    assert hist.losses[-1] < 0.9 * hist.losses[0]
    assert set(hist.stats[0]) == {"mse_hidden", "mse_visible"}


def test_av_correspondence_beats_chance_on_training_pairs(cache):
    model = _small_av()
    model.set_input_stats(cache.patches, cache.frames)
    sampler = CorrespondenceSampler(cache.frames, cache.frame_item, cache.patches, cache.patch_item, cache.n_items)
    before = correspondence_accuracy(model, sampler)
    hist = train(model, sampler, correspondence_loss,
                 TrainerConfig(epochs=8, batch_size=24, lr=3e-3, device="cpu"), log=None)
    after = correspondence_accuracy(model, sampler)
    assert hist.losses[-1] < hist.losses[0]
    assert after >= 0.7 and after > before, (before, after, hist.stats[-1])


def test_trainer_early_stop_restores_best(cache):
    class Flat:  # a loss that cannot improve after the first epoch
        def batches(self, epoch, batch_size, rng):
            yield (torch.zeros(2, 1),)

    model = torch.nn.Linear(1, 1)

    def loss_fn(m, x):
        return (m.weight * 0).sum() + 1.0, {}

    hist = train(model, Flat(), loss_fn, TrainerConfig(epochs=10, patience=2, device="cpu"), log=None)
    assert hist.stopped_early and len(hist.losses) == 3 and hist.best_epoch == 0


def test_audio_autoencoder_is_an_audio_encoder(cache):
    from features.audio import AudioEncoder

    model = _small_ae()
    assert isinstance(model, AudioEncoder) and model.name == "audio_ae" and model.dim == 16
    lm = cache.patches[0][:50]  # shorter than a patch: tiled
    out = model.encode(lm)
    assert out.shape == (16,) and out.dtype == np.float32
    with pytest.raises(DataError):
        model.encode(np.zeros((10, 3), np.float32))


# ------------------------------------------------------------------------------------ entry point
def _small_config() -> EncoderConfig:
    return EncoderConfig(
        audio_ae=AudioAEConfig(dim=16, width=16),
        av=AVConfig(dim=16, audio_width=16, vision_width=8, hidden=32),
        ae_trainer=TrainerConfig(epochs=2, batch_size=16),
        av_trainer=TrainerConfig(epochs=2, batch_size=24),
    )


@pytest.fixture(scope="module")
def trained(catalog, tmp_path_factory):
    """train_encoders run once on a features folder; returns (features_dir, out_dir, report, items before)."""
    root = tmp_path_factory.mktemp("trained")
    fdir = _features_dir(catalog, root / "features")
    before = pl.read_parquet(fdir / "items.parquet")
    report = train_encoders(fdir, catalog, root / "out", epochs=2, seed=3, log=None, config=_small_config(),
                            device="cpu")
    return fdir, root / "out", report, before


def test_train_encoders_adds_blocks_with_masks(trained, catalog):
    fdir, out, report, before = trained
    feats = ItemFeatures.load(fdir)
    assert feats.item_ids.tolist() == catalog.item_ids.tolist()
    assert {"audio", "video_desc", *BLOCKS} <= set(feats.blocks)
    for name, mask_name in BLOCKS.items():
        block = feats.blocks[name]
        assert block.shape == (len(catalog), 16) and feats.block_masks[name] == mask_name
        mask = feats.masks[mask_name]
        assert not block[~mask].any()  # missing media: zero rows, still flagged missing
        assert (np.abs(block[mask]).sum(axis=1) > 0).all()
    assert feats.masks["audio"].tolist() == before["has_audio"].to_list()  # masks untouched
    assert feats.masks["video"].tolist() == before["has_video"].to_list()
    after = pl.read_parquet(fdir / "items.parquet")
    assert after.columns == before.columns and after.equals(before)  # path, status, error kept
    meta = json.loads((fdir / "features.json").read_text())
    assert meta["provenance"]["extractor"] == {"x": 1} and "ssl_encoders" in meta["provenance"]
    assert meta["blocks"]["av_video"] == {"dim": 16, "mask": "video"}
    assert report.n_rows == len(catalog) and report.n_audio == len(catalog) - 2
    assert report.n_video == len(catalog) - 1 and len(report.ae_losses) == 2 and len(report.av_losses) == 2
    assert [f[0] for f in report.failures] == [BROKEN]
    assert json.loads((out / "ssl" / "report.json").read_text())["n_items"] == len(catalog)
    assert "audio_ae" in report.summary()


def test_train_encoders_rows_match_checkpoint_encoders(trained, catalog):
    """The blocks equal what the checkpoints alone compute from a file (decode -> log-mel -> encode)."""
    from features.audio import logmel
    from features.audio_decode import decode_audio
    from features.video_decode import decode_video

    fdir, out, report, _ = trained
    ae, av = load_encoders(out)
    feats = ItemFeatures.load(fdir)
    row = 5
    path = catalog.paths[row]
    track = decode_audio(path, sample_rate=ae.sample_rate)
    lm = logmel(track.wave, track.sample_rate, ae.n_mels)
    np.testing.assert_allclose(ae.encode(lm), feats.blocks["audio_ae"][row], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(av.audio_encoder().encode(lm), feats.blocks["av_audio"][row], rtol=1e-4, atol=1e-5)
    clip = decode_video(path, fps=1000.0, max_frames=4)
    np.testing.assert_allclose(av.encode_frames(clip.frames), feats.blocks["av_video"][row], rtol=1e-4, atol=1e-5)


def test_train_encoders_is_deterministic(trained, catalog, tmp_path):
    fdir, out, _, _ = trained
    again = tmp_path / "features"
    _features_dir(catalog, again)
    (tmp_path / "out" / "ssl").mkdir(parents=True)
    shutil.copy(out / "ssl" / "media_cache.npz", tmp_path / "out" / "ssl" / "media_cache.npz")  # reused
    train_encoders(again, catalog, tmp_path / "out", epochs=2, seed=3, log=None, config=_small_config(), device="cpu")
    a, b = ItemFeatures.load(fdir), ItemFeatures.load(again)
    for name in BLOCKS:
        np.testing.assert_array_equal(a.blocks[name], b.blocks[name])


def test_train_encoders_refuses_features_of_another_catalog(trained, catalog, tmp_path):
    fdir, out, _, _ = trained
    smaller = catalog.subset(catalog.item_ids.tolist()[:10])
    with pytest.raises(DataError, match="not in this catalog"):
        train_encoders(fdir, smaller, tmp_path / "out", epochs=1, log=None, config=_small_config(), device="cpu")
    with pytest.raises(DataError, match="not a features folder"):
        train_encoders(tmp_path / "nothing", catalog, tmp_path / "out", log=None)
