"""features.fusion: per-block standardisation on present rows, imputation, weights, PCA, state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from features.fusion import Fusion, FusionConfig, fuse
from recsys.data import ItemFeatures
from recsys.errors import ConfigError, DataError, NotFittedError


def make_features(n: int = 40, seed: int = 0, missing_audio=(1, 5, 9), missing_video=(2, 9)) -> ItemFeatures:
    """Three blocks on two modalities with very different scales; a few rows miss a modality.

    Missing rows hold garbage (1e6) so any leak into statistics is visible.
    """
    rng = np.random.default_rng(seed)
    audio = rng.normal(50.0, 10.0, size=(n, 6)).astype(np.float32)
    cnn = rng.normal(-3.0, 0.01, size=(n, 8)).astype(np.float32)
    desc = rng.normal(0.0, 1.0, size=(n, 3)).astype(np.float32) * np.array([1, 100, 0.1], np.float32)
    has_audio = np.ones(n, bool)
    has_audio[list(missing_audio)] = False
    has_video = np.ones(n, bool)
    has_video[list(missing_video)] = False
    audio[~has_audio] = 1e6
    cnn[~has_video] = 1e6
    desc[~has_video] = 1e6
    return ItemFeatures(
        [f"i{k}" for k in range(n)],
        {"audio": audio, "video_cnn": cnn, "video_desc": desc},
        {"audio": has_audio, "video": has_video},
        block_masks={"video_cnn": "video", "video_desc": "video"},
        provenance={"extractor": "test"},
    )


def block_slices(fused: ItemFeatures) -> dict[str, slice]:
    return {b: slice(*o) for b, o in fused.provenance["fusion"]["offsets"].items()}


def test_standardisation_uses_only_present_rows():
    feats = make_features()
    f = Fusion().fit(feats)
    m = feats.masks["audio"]
    np.testing.assert_allclose(f.mean_["audio"], feats.blocks["audio"][m].astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(f.scale_["audio"], feats.blocks["audio"][m].astype(np.float64).std(0), rtol=1e-6)
    assert np.all(f.mean_["video_cnn"] < 0)  # the 1e6 garbage in missing rows never entered
    assert f.n_present_ == {"audio": 37, "video_cnn": 38, "video_desc": 38}


def test_concat_blocks_are_unit_norm_and_missing_rows_are_zero_and_flagged():
    feats = make_features()
    out = fuse(feats)
    assert out.fused.shape == (40, 6 + 8 + 3) and out.fused.dtype == np.float32
    assert out.item_ids.tolist() == feats.item_ids.tolist()
    sl = block_slices(out)
    for b, s in sl.items():
        mask = feats.mask_of(b)
        norms = np.linalg.norm(out.fused[:, s], axis=1)
        np.testing.assert_allclose(norms[mask], 1.0, rtol=1e-5)
        assert np.all(norms[~mask] == 0.0)  # imputed = centroid = zero after standardisation
    # Missing rows are flagged, not silent zeros: masks travel unchanged.
    np.testing.assert_array_equal(out.masks["audio"], feats.masks["audio"])
    np.testing.assert_array_equal(out.masks["video"], feats.masks["video"])
    assert not out.mask_of("fused")[9]  # row 9 has no modality at all
    assert out.mask_of("fused")[1]
    # The standardised block is centred over present rows (before L2 normalisation).
    prov = out.provenance["fusion"]
    assert prov["method"] == "concat" and prov["fused_dim"] == 17 and "centroid" in prov["imputation"]
    assert prov["stats"]["audio"]["n_present"] == 37
    assert out.provenance["extractor"] == "test"  # earlier provenance kept
    json.dumps(out.provenance)  # JSON-able


def test_every_scale_weighs_the_same_after_normalisation():
    feats = make_features(missing_audio=(), missing_video=())
    scaled = ItemFeatures(
        feats.item_ids,
        {**feats.blocks, "audio": feats.blocks["audio"] * 1000 + 7},
        feats.masks,
        block_masks=feats.block_masks,
    )
    np.testing.assert_allclose(fuse(scaled).fused, fuse(feats).fused, atol=2e-5)


def test_weighted_block_norm_equals_weight():
    feats = make_features()
    out = fuse(feats, method="weighted", weights={"audio": 2.0, "video": 0.5, "video_desc": 0.0})
    sl = block_slices(out)
    expected = {"audio": 2.0, "video_cnn": 0.5, "video_desc": 0.0}  # block name beats modality
    for b, w in expected.items():
        mask = feats.mask_of(b)
        norms = np.linalg.norm(out.fused[:, sl[b]], axis=1)
        np.testing.assert_allclose(norms[mask], w, rtol=1e-5, atol=1e-7)
        assert np.all(norms[~mask] == 0.0)
    assert out.provenance["fusion"]["weights"] == expected
    # Unnamed blocks keep weight 1.
    out2 = fuse(feats, method="weighted", weights={"audio": 3.0})
    assert out2.provenance["fusion"]["weights"] == {"audio": 3.0, "video_cnn": 1.0, "video_desc": 1.0}


def test_block_selection_and_order():
    feats = make_features()
    out = fuse(feats, blocks=["video_desc", "audio"])
    assert out.fused.shape == (40, 9)
    assert out.provenance["fusion"]["offsets"] == {"video_desc": [0, 3], "audio": [3, 9]}
    with pytest.raises(DataError, match="unknown blocks"):
        fuse(feats, blocks=["nope"])


def test_pca_dim_and_fit_rows():
    feats = make_features()
    out = fuse(feats, method="pca", dim=5)
    assert out.fused.shape == (40, 5) and out.fused.dtype == np.float32
    pca = out.provenance["fusion"]["pca"]
    assert pca["n_components"] == 5 and pca["fit_rows"] == "complete"
    assert pca["n_fit"] == 40 - 4  # rows 1, 2, 5, 9 lack a modality
    # Default dim is capped by the data (17 input columns).
    assert fuse(feats, method="pca").fused.shape == (40, 17)
    with pytest.warns(UserWarning, match="exceeds"):
        assert fuse(feats, method="pca", dim=500).fused.shape == (40, 17)


def test_pca_falls_back_to_rows_with_any_modality_with_a_warning():
    n = 10
    feats = make_features(n=n, missing_audio=range(0, 5), missing_video=range(5, 10))
    with pytest.warns(UserWarning, match="at least one"):
        f = Fusion(FusionConfig(method="pca", dim=3)).fit(feats)
    assert f.pca_fit_rows_ == "any" and f.n_fit_pca_ == n


def test_transform_rows_reproduces_training_rows():
    feats = make_features()
    for cfg in (
        FusionConfig(),
        FusionConfig(method="weighted", weights={"audio": 0.3}),
        FusionConfig(method="pca", dim=6, weights={"video": 2.0}),
    ):
        f = Fusion(cfg).fit(feats)
        fused = f.transform(feats).fused
        # all rows at once, with masks keyed by modality
        rows = f.transform_rows(feats.blocks, feats.masks)
        np.testing.assert_allclose(rows, fused, atol=1e-6)
        # one new item at a time; a missing block may be simply absent (or NaN)
        for i in (0, 1, 2, 9):
            blocks = {b: feats.blocks[b][i] for b in feats.blocks if feats.mask_of(b)[i]}
            one = f.transform_rows(blocks, {m: [v[i]] for m, v in feats.masks.items()})
            np.testing.assert_allclose(one[0], fused[i], atol=1e-6)
            if blocks:  # without masks, a given block is present and an absent one missing
                np.testing.assert_allclose(f.transform_rows(blocks)[0], fused[i], atol=1e-6)
        nan_row = {b: np.full(feats.blocks[b].shape[1], np.nan) for b in ("video_cnn", "video_desc")}
        nan_row["audio"] = feats.blocks["audio"][2]
        np.testing.assert_allclose(
            f.transform_rows(nan_row, {"audio": [True], "video": [False]})[0], fused[2], atol=1e-6
        )


def test_transform_rows_validates_input():
    feats = make_features()
    f = Fusion().fit(feats)
    with pytest.raises(DataError, match="shape"):
        f.transform_rows({"audio": np.zeros((1, 5))})
    with pytest.raises(DataError, match="no values"):
        f.transform_rows({"audio": np.zeros((1, 6))}, {"video": [True]})
    with pytest.raises(DataError, match="NaN"):
        f.transform_rows({"audio": np.full((1, 6), np.nan)})
    with pytest.raises(NotFittedError):
        Fusion().transform_rows({"audio": np.zeros((1, 6))})


@pytest.mark.parametrize(
    "cfg",
    [FusionConfig(), FusionConfig(method="weighted", weights={"video": 0.25}), FusionConfig(method="pca", dim=4)],
)
def test_state_round_trip(cfg, tmp_path):
    feats = make_features()
    f = Fusion(cfg).fit(feats)
    st = f.state()
    json.dumps(st["meta"])  # metadata is JSON; arrays are plain numpy
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in st["arrays"].values())
    g = Fusion.from_state(st)
    np.testing.assert_array_equal(g.transform(feats).fused, f.transform(feats).fused)
    f.save(tmp_path)
    h = Fusion.load(tmp_path)
    np.testing.assert_array_equal(h.transform(feats).fused, f.transform(feats).fused)
    assert h.provenance() == f.provenance()
    with np.load(tmp_path / "fusion.npz", allow_pickle=False) as z:  # no pickle anywhere
        assert set(z.files) == set(st["arrays"])


def test_fused_features_save_and_load(tmp_path):
    out = fuse(make_features(), method="weighted", weights={"audio": 2.0})
    out.save(tmp_path)
    back = ItemFeatures.load(tmp_path)
    np.testing.assert_array_equal(back.fused, out.fused)
    assert back.provenance["fusion"]["weights"]["audio"] == 2.0


def test_block_without_any_present_row_warns_and_is_imputed():
    feats = make_features(n=6, missing_audio=range(6), missing_video=())
    with pytest.warns(UserWarning, match="no item has modality 'audio'"):
        out = fuse(feats)
    assert np.all(out.fused[:, :6] == 0)
    none = make_features(n=4, missing_audio=range(4), missing_video=range(4))
    with pytest.raises(DataError, match="nothing to fit"), pytest.warns(UserWarning):
        fuse(none)


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown fusion method"):
        FusionConfig(method="mean")
    with pytest.raises(ConfigError, match="needs weights"):
        FusionConfig(method="weighted")
    with pytest.raises(ConfigError, match="takes no weights"):
        FusionConfig(weights={"audio": 1.0})
    with pytest.raises(ConfigError, match=">= 0"):
        FusionConfig(method="weighted", weights={"audio": -1})
    with pytest.raises(ConfigError, match="pca"):
        FusionConfig(dim=3)
    with pytest.raises(ConfigError, match="unknown blocks/modalities"):
        fuse(make_features(), method="weighted", weights={"image": 1.0})
    cfg = FusionConfig(method="pca", dim=8, weights={"audio": 2}, blocks=("audio",))
    assert FusionConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
