"""Content and hybrid models on planted data: 4 item clusters whose content vectors reveal the
cluster, users who like one cluster, and 8 cold items (no training interactions) spread over the
clusters. Content and hybrid must reach the cold items; the hybrid must follow the contract."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.data import Interactions, ItemFeatures
from recsys.errors import ConfigError, DataError, NotFittedError
from recsys.evaluation import evaluate
from recsys.models import Content, Hybrid

N_USERS, N_ITEMS, N_CLUSTERS = 120, 48, 4
COLD = np.arange(40, 48)  # two cold items per cluster


def _cluster(i: np.ndarray) -> np.ndarray:
    return i % N_CLUSTERS


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(N_CLUSTERS, 16)) * 3
    items = np.arange(N_ITEMS)
    audio = centres[_cluster(items)] + rng.normal(size=(N_ITEMS, 16))
    video = centres[_cluster(items)][:, ::-1] + rng.normal(size=(N_ITEMS, 16))
    fused = np.hstack([audio, video])
    feats = ItemFeatures(items, {"audio": audio, "video": video}, fused=fused)
    users, its, ts = [], [], []
    for u in range(N_USERS):
        pool = items[_cluster(items) == u % N_CLUSTERS]
        for t, i in enumerate(rng.choice(pool, size=8, replace=False)):
            users.append(u), its.append(int(i)), ts.append(float(t))
    x = Interactions.from_arrays(users, its, timestamps=ts, user_ids=np.arange(N_USERS), item_ids=items)
    cold = np.isin(x.matrix.indices, COLD)
    rows = np.repeat(np.arange(N_USERS), np.diff(x.matrix.indptr))
    last = x.timestamps >= 6  # each user's last two interactions
    train = x.subset(~cold & ~last)
    val = x.subset(~cold & last & (rows % 2 == 0))
    test = x.subset(cold | (last & (rows % 2 == 1)))
    return train, val, test, feats


SMALL = dict(candidates={"als": 20, "media": 20, "itemknn": 10, "content": 10},
             ranker_params={"rounds": 60, "min_data_in_leaf": 5},
             als_params={"factors": 8, "regularization": 0.05, "alpha": 5.0, "weighting": "none"},
             bridge_params={"epochs": 30, "hidden": 32})


def _hybrid(**kw):
    return Hybrid(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def hybrid(data):
    train, _, _, feats = data
    return _hybrid().fit(train, feats)


def test_content_scores_cold_items_from_media(data):
    train, _, test, feats = data
    m = Content(half_life_days=None).fit(train, feats)
    r = evaluate(m, train, test, ks=(10,))
    assert r.segments["cold"]["recall@10"] > 0.5
    assert m.knows_item(int(COLD[0])) and m.item_popularity_[COLD[0]] == 0  # known from media alone
    sims, _ = m.similar_items(int(COLD[0]), n=5)
    assert (_cluster(sims) == _cluster(COLD[:1])).mean() >= 0.8
    with pytest.raises(DataError, match="item features"):
        Content().fit(train)


def test_hybrid_contract(hybrid, data):
    train = data[0]
    idx, val = hybrid.recommend(np.arange(N_USERS), n=10)
    for u in (0, 5, 77):
        i1, v1 = hybrid.recommend(u, n=10)
        np.testing.assert_array_equal(i1, idx[u])
        np.testing.assert_allclose(v1, val[u], rtol=1e-5)
        assert not set(i1) & set(train.user_items(u).tolist())
    # cross-fitted labels: 3 folds x one held-out training item per user, scored by fold components;
    # no item goes cold in a fold by itself here, so each fold simulates new items
    assert hybrid.ranker_positives_ > N_USERS and hybrid.ranker_users_ <= 3 * N_USERS
    assert all(n > 0 for n in hybrid.simulated_cold_)


def test_hybrid_puts_cold_items_in_lists_and_follows_tastes(hybrid, data):
    train, _, test, _ = data
    r = evaluate(hybrid, train, test, ks=(10,))
    assert r.segments["cold"]["recall@10"] > 0.3, r.segments
    idx, _ = hybrid.recommend(np.arange(N_USERS), n=5)
    own = _cluster(idx) == (np.arange(N_USERS) % N_CLUSTERS)[:, None]
    assert own.mean() > 0.8


def test_hybrid_new_user_from_short_history(hybrid):
    hist = sp.csr_matrix((np.ones(3), ([0, 0, 0], [1, 5, 9])), shape=(1, N_ITEMS))  # cluster 1
    idx, val = hybrid.recommend(-1, hist, n=5)
    assert np.isfinite(val).all() and not {1, 5, 9} & set(idx.tolist())
    assert (_cluster(idx) == 1).mean() >= 0.8
    empty, _ = hybrid.recommend(-1, n=5)
    assert (empty >= 0).all()


def test_hybrid_never_learns_from_validation_labels(data):
    """Fitting reads train only: a validation part given afterwards changes the exposure setting
    it chooses, never the ranker (same coefficients, same warm order with cold_share=None)."""
    train, val, _, feats = data
    a = _hybrid(cold_share=None).fit(train, feats)
    b = _hybrid(cold_share=None).fit(train, feats)
    b.choose_on_validation(val)
    np.testing.assert_array_equal(a.ranker_model_.coef_, b.ranker_model_.coef_)
    assert b.exposure_choice_["rule"].startswith("no validation interaction on a cold item")


@pytest.mark.parametrize("ranker", ["lambdarank", "binary"])
def test_hybrid_gbm_rankers(data, ranker):
    train, _, test, feats = data
    m = _hybrid(ranker=ranker).fit(train, feats)
    assert "item_is_cold" in m.ranker_feature_names and "item_log_pop" not in m.ranker_feature_names
    assert evaluate(m, train, test, ks=(10,)).segments["warm"]["recall@10"] > 0.3


def test_hybrid_ablation_drops_components(data):
    train, _, _, feats = data
    m = _hybrid(components=("als", "media")).fit(train, feats)
    assert m.ranker_feature_names == ["als_z", "media_z", "als_z|cold", "media_z|cold", "item_is_cold"]
    assert m.itemknn_ is None and m.contents_ == {}
    assert m.recommend(0, n=3)[0].shape == (3,)
    with pytest.raises(ConfigError, match="unknown hybrid components"):
        _hybrid(components=("als", "graph")).fit(train, feats)


def test_crossfit_features_match_serving(hybrid):
    """The ranker is served the feature distribution it learned from: every ranker feature's
    mean moves by less than half a training standard deviation between the cross-fitted rows and
    the serving components' rows."""
    shift = hybrid.feature_shift()
    assert set(shift) == set(hybrid.feature_names)
    # the share of cold items differs on purpose (cold simulation gives the ranker cold labels)
    read = {n.split("|")[0] for n in hybrid.ranker_feature_names} - {"item_is_cold"}
    assert max(abs(shift[n]) for n in read) < 0.5, shift


def test_cold_share_chosen_on_validation_with_cold_positives(data):
    """With cold items among validation positives, the documented rule picks a share from the grid
    and records the table it chose from."""
    train, val, test, feats = data
    m = _hybrid().fit(train, feats)
    cold_val = test.subset(np.isin(test.matrix.indices, COLD))  # a validation part that hits cold items
    choice = m.choose_on_validation(cold_val)
    assert choice["cold_share"] in (None, *[s for s in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)])
    assert choice["cold_ceiling"] in (1, 3) and (m.cold_share, m.cold_ceiling) == (choice["cold_share"],
                                                                                     choice["cold_ceiling"])
    table = choice["table"]
    assert set(table) >= {"0.0/1", "0.25/1", "0.25/3"} and "0.0/3" not in table
    assert choice["best_content_cold_recall"] > 0
    for ceiling in (1, 3):  # more exposure, more cold hits
        assert table[f"0.4/{ceiling}"]["cold_recall"] >= table["0.0/1"]["cold_recall"]
    assert table["0.25/1"]["lift"] is None and table["0.25/3"]["lift"] >= 0


def test_hybrid_errors(data):
    train, _, _, feats = data
    with pytest.raises(NotFittedError):
        Hybrid().recommend(0)
    with pytest.raises(DataError, match="item features"):
        Hybrid().fit(train)


@pytest.mark.parametrize("ceiling", [1, 3])
def test_cold_share_policy_sets_cold_exposure(data, ceiling):
    """cold_share gives cold items that share of the top-20 slots (8 cold items here, two per
    taste): in every list with cold_ceiling=1, on average with a calibrated lift otherwise; no list
    holds more than the ceiling, what is reached is recorded, and the lift travels with the model."""
    train, _, _, feats = data
    shares = {}
    for target in (0.15, 0.4):
        m = _hybrid(cold_share=target, cold_ceiling=ceiling).fit(train, feats)
        idx, score = m.recommend(np.arange(N_USERS), n=20)
        per_user = np.isin(idx, COLD).sum(axis=1)
        # one policy on every path: candidate-only lists, dense lists, explanations
        np.testing.assert_array_equal(_dense_lists(m, np.arange(N_USERS), None, 20)[0], idx)
        u = int(np.argmax(per_user))
        groups = m.feature_contributions(u, train.matrix[u], idx[u])
        np.testing.assert_allclose(sum(groups.values()), score[u], rtol=1e-4, atol=1e-4)
        assert m.exposure_["list_slots"] == min(ceiling * int(target * 20), 19)
        assert per_user.max() <= m.exposure_["list_slots"]
        assert m.cold_lift_ == m.exposure_["lift"] and (m.cold_lift_ is None) == (ceiling == 1)
        shares[target] = per_user.mean() / 20
        assert abs(shares[target] - m.exposure_["reached"]) < 1e-3, (shares, m.exposure_)  # rounded to 4 places
        assert shares[target] > target - 0.06, shares
        assert m.get_state()["cold_lift_"] == m.cold_lift_
    assert shares[0.4] > shares[0.15]
    with pytest.raises(ConfigError, match="cold_ceiling"):
        _hybrid(cold_ceiling=0).fit(train, feats)


def test_feature_importance_names_every_feature(hybrid):
    imp = hybrid.feature_importance()
    assert list(imp) == hybrid.ranker_feature_names and abs(sum(imp.values()) - 1) < 1e-6
    srcs = ["als", "media", "itemknn", "content_fused", "content_audio", "content_video"]
    assert list(imp) == [f"{s}_z" for s in srcs] + [f"{s}_z|cold" for s in srcs] + ["item_is_cold"]
    assert "als_log_rank" in hybrid.feature_names and "item_log_pop" in hybrid.feature_names


@pytest.mark.parametrize("ranker", ["linear", "lambdarank"])
def test_ranker_contributions_sum_to_the_score(data, hybrid, ranker):
    """Explanations' ranker part: per-group contributions add up to the score the hybrid ranks by,
    for warm and cold recommended items alike."""
    from recsys.explain import RANKER_GROUPS

    train, _, _, feats = data
    m = hybrid if ranker == "linear" else _hybrid(ranker="lambdarank").fit(train, feats)
    for u in (0, 7):
        idx, score = m.recommend(u, n=8)
        groups = m.feature_contributions(u, train.matrix[u], idx)
        assert set(groups) <= set(RANKER_GROUPS) and {"cf", "media", "bias"} <= set(groups)
        np.testing.assert_allclose(sum(groups.values()), score, rtol=1e-4, atol=1e-4)
    # the cold flag's part and what the exposure policy changes (lifted into a list, or held out
    # past the share) are reported as new_item_policy
    assert any((m.feature_contributions(u, train.matrix[u], COLD)["new_item_policy"] != 0).any() for u in range(20))
    from recsys.explain import explain

    idx, score = m.recommend(3, n=3)
    for e, sc in zip(explain(m, train.matrix[3], idx, feats, user_idx=3), score):
        assert e.ranker is not None and abs(sum(e.ranker.values()) - sc) < 1e-3


def _dense_lists(model, users, rows, n):
    """The dense path's lists (every component's full score row), for comparison."""
    from recsys.models.base import Recommender

    return Recommender.recommend(model, users, rows, n=n)


@pytest.mark.parametrize("keep_rows", [True, False], ids=["exact-rows", "moments"])
def test_candidate_only_serving_gives_the_dense_lists(hybrid, data, keep_rows, monkeypatch):
    """recommend() scores only candidate pairs (item moments, gathered dot products, sparse kNN
    rows); lists and scores equal the dense path's for known users, folded-in new users and a
    grown catalog. Both ways of an embedding component: exact retrieval's kept score rows, and
    the closed-form moments + gathered dot products an approximate index needs."""
    from recsys.models import candidate_scoring as cs

    if not keep_rows:
        monkeypatch.setattr(cs, "ROW_CELLS", 0)
    train = data[0]
    assert hybrid.serves_from_candidates()
    users = np.arange(N_USERS)
    a_idx, a_val = _dense_lists(hybrid, users, None, 10)
    b_idx, b_val = hybrid.recommend(users, n=10)
    np.testing.assert_array_equal(a_idx, b_idx)
    np.testing.assert_allclose(a_val, b_val, rtol=1e-4, atol=1e-5)
    hist = sp.csr_matrix((np.ones(3), ([0, 0, 0], [1, 5, 9])), shape=(1, N_ITEMS), dtype=np.float32)
    np.testing.assert_array_equal(_dense_lists(hybrid, np.array([-1]), hist, 10)[0], hybrid.recommend([-1], hist, n=10)[0])
    # the row statistics of every component equal the dense row's (seen items excluded)
    rows = train.matrix[users]
    for name, comp in hybrid._sources(hybrid):
        dense = comp.scores(users, rows)
        dense[np.repeat(users, np.diff(rows.indptr)), rows.indices] = np.nan
        view = cs.source_for(comp, users, rows, {})
        if isinstance(view, cs.EmbeddingSource):
            assert (view.scores_ is not None) == keep_rows
        st = view.row_stats()
        np.testing.assert_allclose(st.mean, np.nanmean(dense, axis=1), rtol=1e-4, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(st.std, np.nanstd(dense, axis=1), rtol=1e-4, atol=1e-5, err_msg=name)


def test_candidate_only_serving_falls_back_where_it_must(data):
    train, _, _, feats = data
    gbm = _hybrid(ranker="lambdarank").fit(train, feats)
    assert not gbm.serves_from_candidates()  # LambdaMART reads within-row ranks: dense path
    lin = _hybrid().fit(train, feats)
    idx, _ = lin.recommend(0, n=N_ITEMS - 8)  # longer than the pool: dense path fills from ALS order
    assert len(set(idx.tolist())) == N_ITEMS - 8 and (idx >= 0).all()
    empty, _ = lin.recommend(-1, n=5)  # no history: the dense path's popularity answer
    assert (empty >= 0).all()
    lin.add_items(["new-a"], ItemFeatures(["new-a"], {b: v[:1] for b, v in feats.blocks.items()},
                                          fused=feats.fused[:1]))
    np.testing.assert_array_equal(_dense_lists(lin, np.arange(10), None, 10)[0], lin.recommend(np.arange(10), n=10)[0])


@pytest.mark.shared
def test_candidate_only_lists_equal_dense_lists_on_tiktok():
    """1,000 TikTok users: candidate-only lists equal the dense path's (issue 14's check)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "tiktok"
    if not root.exists():
        pytest.skip("../shared/data/tiktok is absent")
    from recsys.jobs.evaluate import load_eval_data

    d = load_eval_data(dataset=str(root))
    train = d.split.train
    m = Hybrid(folds=1, als_params={"factors": 32, "iterations": 4}, bridge_params={"epochs": 3}).fit(
        train, d.item_features)
    users = np.random.default_rng(0).choice(train.n_users, 1000, replace=False)
    a, av = _dense_lists(m, users, None, 10)
    b, bv = m.recommend(users, n=10)
    assert _same_up_to_ties(a, av, b, bv).all()
    # exact ties (e.g. new items without media share every feature) are broken by float noise
    assert (a == b).all(axis=1).mean() >= 0.5


def _same_up_to_ties(a, av, b, bv, tol=1e-5):
    """(b,) whether two lists have the same scores position by position and the same items
    wherever a score is not tied (within ``tol``) with another listed score."""
    ok = np.isclose(av, bv, rtol=0, atol=tol).all(axis=1)
    for u in np.flatnonzero(ok):
        tied = (np.abs(av[u][:, None] - av[u][None, :]) < tol).sum(axis=1) > 1
        last = np.abs(av[u] - av[u][-1]) < tol  # the boundary's ties may be any of the tied items
        ok[u] = (a[u][~tied & ~last] == b[u][~tied & ~last]).all() and \
            set(a[u][tied & ~last]) == set(b[u][tied & ~last])
    return ok
