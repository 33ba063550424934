"""The content -> CF bridge: contract checks, planted cold-start structure, checkpoints.

Synthetic data with a known answer: items fall in clusters, an item's content vector is its
cluster's centroid plus noise, and every user likes one cluster. Some items of each cluster have
no training interactions (cold); their held-out users are users of their own cluster. So from
media alone a cold item must land with its own cluster's users, which plain ALS cannot do.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.data import Interactions
from recsys.data.item_features import ItemFeatures
from recsys.errors import BundleError, ConfigError, DataError, NotFittedError
from recsys.evaluation import evaluate
from recsys.models import ALS
from recsys.models.bridge import Bridge

N_CLUSTERS, PER_CLUSTER, COLD_PER_CLUSTER = 4, 30, 5
N_ITEMS = N_CLUSTERS * PER_CLUSTER
N_USERS, DIM = 120, 16
ALS_PARAMS = {"factors": 8, "regularization": 0.1, "iterations": 10, "num_threads": 1}
FAST = {"hidden": 32, "epochs": 30, "lr": 3e-3, "als_params": ALS_PARAMS, "cold_share": 0.3}


def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
    cold = np.zeros(N_ITEMS, dtype=bool)
    for c in range(N_CLUSTERS):  # the last items of each cluster are cold
        cold[c * PER_CLUSTER + PER_CLUSTER - COLD_PER_CLUSTER : (c + 1) * PER_CLUSTER] = True
    centroids = rng.normal(0, 3.0, size=(N_CLUSTERS, DIM))
    content = (centroids[cluster] + rng.normal(0, 0.7, size=(N_ITEMS, DIM))).astype(np.float32)
    taste = np.arange(N_USERS) % N_CLUSTERS
    tu, ti, su, si = [], [], [], []
    for u in range(N_USERS):
        own = np.flatnonzero(cluster == taste[u])
        warm_own, cold_own = own[~cold[own]], own[cold[own]]
        for i in rng.choice(warm_own, size=8, replace=False):
            tu.append(u)
            ti.append(int(i))
        for i in rng.choice(cold_own, size=2, replace=False):
            su.append(u)
            si.append(int(i))
    ids = dict(user_ids=np.arange(N_USERS), item_ids=np.arange(N_ITEMS))
    train = Interactions.from_arrays(tu, ti, **ids)
    test = Interactions.from_arrays(su, si, **ids)
    # one cold item has no media at all
    no_media = N_ITEMS - 1
    mask = np.ones(N_ITEMS, dtype=bool)
    mask[no_media] = False
    content[no_media] = 0.0
    feats = ItemFeatures(np.arange(N_ITEMS), {"audio": content}, {"audio": mask}, fused=content)
    return train, test, feats, cluster, cold, taste, no_media


@pytest.fixture(scope="module")
def world():
    return _world()


@pytest.fixture(scope="module")
def fitted(world):
    train, _, feats, *_ = world
    return Bridge(**FAST).fit(train, feats)


# ---------------------------------------------------------------------- contract
def test_unfitted_raises():
    m = Bridge()
    for call in (lambda: m.recommend(0), lambda: m.score(0, 0), lambda: m.similar_items(0),
                 lambda: m.predict_factors(np.zeros((1, DIM), dtype=np.float32))):
        with pytest.raises(NotFittedError, match="fit"):
            call()


def test_fit_needs_aligned_features(world):
    train, _, feats, *_ = world
    with pytest.raises(DataError, match="item features"):
        Bridge(**FAST).fit(train)
    shuffled = feats.align(np.arange(N_ITEMS)[::-1])
    with pytest.raises(DataError, match="aligned"):
        Bridge(**FAST).fit(train, shuffled)
    with pytest.raises(ConfigError):
        Bridge(**{**FAST, "rank_weight": 2.0}).fit(train, feats)


def test_learned_state(fitted, world):
    train, _, feats, cluster, cold, taste, no_media = world
    m = fitted
    assert m.item_factors_.shape == (N_ITEMS, ALS_PARAMS["factors"]) and m.item_factors_.dtype == np.float32
    assert m.predicted_factors_.shape == m.item_factors_.shape
    np.testing.assert_array_equal(m.cold_mask_, cold)
    np.testing.assert_array_equal(m.user_factors_, m.als_.user_factors_)
    # warm items keep their ALS factors; cold items with media get predictions; no media: zero
    np.testing.assert_array_equal(m.item_factors_[~cold], m.als_.item_factors_[~cold])
    media_cold = cold & feats.mask_of("fused")
    np.testing.assert_array_equal(m.item_factors_[media_cold], m.predicted_factors_[media_cold])
    assert np.abs(m.item_factors_[media_cold]).sum(axis=1).min() > 0
    assert not m.item_factors_[no_media].any() and not m.predicted_factors_[no_media].any()
    assert m.knows_item(0) and m.knows_item(int(np.flatnonzero(media_cold)[0])) and not m.knows_item(no_media)
    assert len(m.history_) == FAST["epochs"] and all(np.isfinite(h["loss"]) for h in m.history_)


def test_batch_equals_single_and_small_batches(fitted):
    m = fitted
    idx, val = m.recommend(np.arange(N_USERS), n=7)
    for u in (0, 5, 61, N_USERS - 1):
        i1, v1 = m.recommend(u, n=7)
        np.testing.assert_array_equal(i1, idx[u])
        np.testing.assert_allclose(v1, val[u], rtol=1e-5, atol=1e-6)
    idx2, val2 = m.recommend(np.arange(N_USERS), n=7, batch_size=5)
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_allclose(val, val2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.score(4, idx[4]), val[4], rtol=1e-5, atol=1e-6)


def test_seen_items_filtered(fitted, world):
    train = world[0]
    idx, _ = fitted.recommend(np.arange(N_USERS), n=10)
    for u in range(N_USERS):
        assert not set(idx[u].tolist()) & set(train.user_items(u).tolist())


def test_unknown_user_gets_an_answer(fitted, world):
    m = fitted
    cluster = world[3]
    idx, val = m.recommend(-1, n=5)  # no history: popularity
    assert (idx >= 0).all() and np.isfinite(val).all()
    np.testing.assert_allclose(val, np.sort(m.item_popularity_)[::-1][:5])
    hist_items = np.flatnonzero(cluster == 2)[:4]
    hist = sp.csr_matrix((np.ones(4), ([0] * 4, hist_items)), shape=(1, N_ITEMS))
    idx2, val2 = m.recommend(N_USERS + 3, hist, n=5)  # folded in with ALS
    assert np.isfinite(val2).all() and not set(hist_items.tolist()) & set(idx2.tolist())
    assert (cluster[idx2] == 2).mean() >= 0.8
    assert not m.knows_user(-1) and m.knows_user(0)


def test_deterministic_with_seed(world):
    train, _, feats, *_ = world
    a = Bridge(**FAST, seed=3).fit(train, feats)
    b = Bridge(**FAST, seed=3).fit(train, feats)
    np.testing.assert_array_equal(a.predicted_factors_, b.predicted_factors_)
    np.testing.assert_array_equal(a.recommend(np.arange(N_USERS), n=5)[0], b.recommend(np.arange(N_USERS), n=5)[0])


def test_params_roundtrip():
    m = Bridge(hidden=17, predict_warm=True)
    p = m.get_params()
    assert p["hidden"] == 17 and p["predict_warm"] is True and p["block"] == "fused"
    assert '"model": "Bridge"' in m.config_json()


# ---------------------------------------------------------------------- planted structure
def test_cold_items_score_their_cluster_users_higher(fitted, world):
    _, _, feats, cluster, cold, taste, no_media = world
    m = fitted
    scores = m.user_factors_ @ m.item_factors_.T  # (users, items)
    for i in np.flatnonzero(cold & feats.mask_of("fused")):
        own = scores[taste == cluster[i], i].mean()
        other = scores[taste != cluster[i], i].mean()
        assert own > other, f"cold item {i}: own-cluster users {own:.3f} <= others {other:.3f}"


def test_cold_segment_recall_beats_als(fitted, world):
    train, test, feats, *_ = world
    als = ALS(**ALS_PARAMS).fit(train)
    r_als = evaluate(als, train, test, ks=(10,), auc=False).segments
    r_bridge = evaluate(fitted, train, test, ks=(10,), auc=False).segments
    assert r_als["cold"]["recall@10"] < 0.02
    assert r_bridge["cold"]["recall@10"] > 0.3, r_bridge["cold"]


def test_similar_items_of_a_cold_item_share_its_cluster(fitted, world):
    cluster, cold = world[3], world[4]
    i = int(np.flatnonzero(cold)[0])
    idx, _ = fitted.similar_items(i, n=5)
    assert (cluster[idx] == cluster[i]).mean() >= 0.8


def test_predict_warm_uses_predictions_everywhere(world):
    train, test, feats, cluster, cold, taste, no_media = world
    m = Bridge(**FAST, predict_warm=True).fit(train, feats)
    media = feats.mask_of("fused")
    np.testing.assert_array_equal(m.item_factors_[media], m.predicted_factors_[media])
    assert evaluate(m, train, test, ks=(10,), auc=False).segments["cold"]["recall@10"] > 0.2


def test_fit_from_reuses_the_als(world):
    train, _, feats, *_ = world
    als = ALS(**ALS_PARAMS).fit(train)
    m = Bridge(**{k: v for k, v in FAST.items() if k != "als_params"}).fit_from(als, train, feats)
    assert m.als_ is als and m.n_users_ == N_USERS and m.n_items_ == N_ITEMS
    np.testing.assert_array_equal(m.item_popularity_, train.item_counts().astype(np.float32))
    np.testing.assert_array_equal(m.item_factors_[~m.cold_mask_], als.item_factors_[~m.cold_mask_])
    other = train.subset(train.matrix.tocoo().row < N_USERS // 2)
    with pytest.raises(NotFittedError):
        Bridge(**FAST).fit_from(ALS(**ALS_PARAMS), train, feats)
    small = Interactions.from_arrays([0, 1], [0, 1], user_ids=np.arange(2), item_ids=np.arange(N_ITEMS))
    with pytest.raises(DataError, match="same interactions"):
        Bridge(**FAST).fit_from(als, small, feats)


def test_raw_output_without_calibration(world):
    train, _, feats, *_ = world
    m = Bridge(**{**FAST, "cold_share": None}).fit(train, feats)
    assert m.cold_norm_ is None
    norms = np.linalg.norm(m.predicted_factors_[feats.mask_of("fused")], axis=1)
    assert norms.std() > 1e-3  # raw regression output: norms vary by item


# ---------------------------------------------------------------------- serving pieces
def test_predict_factors_matches_predicted_rows(fitted, world):
    feats = world[2]
    x = feats.matrix("fused")
    rows = np.array([0, 7, N_ITEMS - 2, 40])
    np.testing.assert_allclose(fitted.predict_factors(x[rows]), fitted.predicted_factors_[rows], rtol=1e-6, atol=1e-7)
    assert fitted.predict_factors(x[3]).shape == (1, ALS_PARAMS["factors"])
    with pytest.raises(DataError, match="expects"):
        fitted.predict_factors(np.zeros((2, DIM + 1), dtype=np.float32))


def test_checkpoint_round_trip(fitted, world, tmp_path):
    from training.bridge import load_bridge, save_bridge
    from training.bridge_net import predict

    feats = world[2]
    path = save_bridge(fitted.net_, fitted.bridge_config_, tmp_path / "bridge.pt")
    net, config = load_bridge(path)
    assert config == fitted.bridge_config_
    media = feats.mask_of("fused")
    np.testing.assert_array_equal(predict(net, feats.matrix("fused"))[media], fitted.predicted_factors_[media])
    # a bad checkpoint is a BundleError, as for every checkpoint loader (training.checkpoint)
    with pytest.raises(BundleError, match="not found"):
        load_bridge(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BundleError, match="cannot read checkpoint"):
        load_bridge(tmp_path / "junk.pt")


# ---------------------------------------------------------------------- torch pieces
def test_train_bridge_regression_only_is_deterministic(world):
    from training.bridge import BridgeConfig, train_bridge
    from training.bridge_net import predict

    train, _, feats, cluster, cold, *_ = world
    als = ALS(**ALS_PARAMS).fit(train)
    cfg = BridgeConfig(hidden=16, epochs=20, rank_weight=0.0, seed=1, device="cpu", cold_share=None)
    lines: list[str] = []
    net_a, hist = train_bridge(feats.matrix("fused"), als.item_factors_, ~cold, cfg, log=lines.append)
    net_b, _ = train_bridge(feats.matrix("fused"), als.item_factors_, ~cold, cfg)
    x = feats.matrix("fused")
    np.testing.assert_array_equal(predict(net_a, x), predict(net_b, x))
    assert len(hist) == 20 and len(lines) == 20 and "epoch 20/20" in lines[-1]
    assert hist[-1]["regression"] < hist[0]["regression"]
    with pytest.raises(ConfigError, match="user_factors"):
        train_bridge(x, als.item_factors_, ~cold, dataclasses.replace(cfg, rank_weight=0.5))
    with pytest.raises(DataError, match="disagree"):
        train_bridge(x[:-1], als.item_factors_, ~cold, cfg)


def test_train_bridge_with_ten_one_cycle_steps(world):
    """10 epochs of one batch: the one-cycle warm-up ended exactly at step 0 and torch divided by zero."""
    from training.bridge import BridgeConfig, train_bridge

    train, _, feats, cluster, cold, *_ = world
    als = ALS(**ALS_PARAMS).fit(train)
    cfg = BridgeConfig(hidden=8, epochs=10, seed=2, device="cpu", cold_share=None)
    _, hist = train_bridge(feats.matrix("fused"), als.item_factors_, ~cold, cfg,
                           user_factors=als.user_factors_, interactions=train.matrix)
    assert len(hist) == 10 and all(np.isfinite(h["loss"]) for h in hist)


def test_sampler_flags_false_negatives():
    from training.bridge_sampler import TripleSampler

    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 1], [1, 0, 0, 1]], dtype=np.float32))
    for sampling in ("in_batch", "uniform", "popularity"):
        s = TripleSampler(x, np.arange(4), n_negatives=3, sampling=sampling, seed=0)
        seen = 0
        for items, users, neg, where, valid in s.epoch(batch_size=4):
            seen += len(items)
            assert x[users, items].A1.all()  # each user really interacted with its positive
            np.testing.assert_array_equal(valid, x.toarray()[users[:, None], neg] == 0)
            if sampling == "in_batch":
                np.testing.assert_array_equal(items[where], neg)
                assert (where != np.arange(len(items))[:, None]).all()
        assert seen == 4
    with pytest.raises(ConfigError):
        TripleSampler(x, np.arange(4), 2, sampling="nope")
    with pytest.raises(DataError, match="at least one interaction"):
        TripleSampler(sp.csr_matrix((3, 4), dtype=np.float32), np.arange(4), 2)


def test_losses():
    import torch

    from training.bridge_losses import ranking_loss, regression_loss

    t = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert float(regression_loss(t, t)) == 0.0
    assert abs(float(regression_loss(torch.zeros_like(t), t)) - 1.0) < 1e-6  # relative to the targets
    assert float(regression_loss(t, t, cosine_weight=1.0)) < 1e-6
    u = torch.tensor([[1.0, 0.0]])
    good = ranking_loss(u, torch.tensor([[3.0, 0.0]]), torch.tensor([[[-3.0, 0.0]]]))
    bad = ranking_loss(u, torch.tensor([[-3.0, 0.0]]), torch.tensor([[[3.0, 0.0]]]))
    assert float(good) < 0.01 < 5.0 < float(bad)
    masked = ranking_loss(u, torch.tensor([[-3.0, 0.0]]), torch.tensor([[[3.0, 0.0]]]), valid=torch.tensor([[False]]))
    assert float(masked) == 0.0


def test_calibration_reaches_the_share():
    from recsys.models.bridge_policy import calibrate_norm, list_share, top_scores

    rng = np.random.default_rng(0)
    users_f = rng.normal(size=(50, 4)).astype(np.float32)
    items_f = rng.normal(size=(30, 4)).astype(np.float32)
    empty = sp.csr_matrix((50, 30), dtype=np.float32)
    warm_top = top_scores(users_f, items_f, empty, np.arange(30), np.arange(50), 10)
    assert (np.diff(warm_top, axis=1) <= 0).all()
    directions = rng.normal(size=(8, 4)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    norm = calibrate_norm(directions, users_f, warm_top, 0.2, np.arange(50))
    cold_top = top_scores(users_f, directions, sp.csr_matrix((50, 8), dtype=np.float32), np.arange(8), np.arange(50), 10)
    assert abs(list_share(norm, cold_top, warm_top) - 0.2) <= 0.02
    assert list_share(norm * 0.5, cold_top, warm_top) <= list_share(norm, cold_top, warm_top) <= list_share(norm * 2, cold_top, warm_top)


def test_calibration_with_an_unreachable_share_stays_finite():
    """One calibration item cannot fill 15% of 20 slots: the norm must not explode (it used to reach ~1e17)."""
    from recsys.models.bridge_policy import calibrate_norm, list_share

    rng = np.random.default_rng(0)
    users = rng.normal(size=(30, 4)).astype(np.float32)
    warm_top = np.sort(rng.random((30, 20)).astype(np.float32), axis=1)[:, ::-1]
    direction = np.array([[1.0, 0, 0, 0]], np.float32)
    norm = calibrate_norm(direction, users, warm_top, 0.15, np.arange(30))
    assert np.isfinite(norm) and norm < 1e4
    cold_top = np.sort((users @ direction.T) * 1.0, axis=1)  # (30, 1)
    # at the calibrated norm the item already takes every slot it can ever get
    assert list_share(norm, np.pad(cold_top, ((0, 0), (0, 19)), constant_values=-np.inf), warm_top) > 0
