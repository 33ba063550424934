"""Explanations: ALS fold-in terms add up to the score, the removal test, nearest history items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.data import Interactions, ItemFeatures
from recsys.explain import explain
from recsys.faithfulness import paired_interval, removal_test
from recsys.models import make_model

N_USERS, N_ITEMS, K = 150, 60, 4


@pytest.fixture(scope="module")
def planted():
    """Users like one of K item clusters; content blocks reveal the cluster (audio) or nothing (video)."""
    rng = np.random.default_rng(1)
    cluster = np.arange(N_ITEMS) % K
    users, items = [], []
    for u in range(N_USERS):
        pool = np.flatnonzero(cluster == u % K)
        for i in rng.choice(pool, size=int(rng.integers(5, 10)), replace=False):
            users.append(u), items.append(int(i))
        users.append(u), items.append(int(rng.integers(N_ITEMS)))  # one off-taste item each
    x = Interactions.from_arrays(users, items, user_ids=np.arange(N_USERS), item_ids=np.arange(N_ITEMS))
    centres = rng.normal(size=(K, 8)) * 3
    feats = ItemFeatures(np.arange(N_ITEMS), {"audio": centres[cluster] + rng.normal(size=(N_ITEMS, 8)),
                                              "video": rng.normal(size=(N_ITEMS, 8))})
    als = make_model("als", factors=16, regularization=0.1, alpha=5.0, weighting="none", iterations=15).fit(x)
    return x, feats, als, cluster


def test_als_terms_add_up_to_the_fold_in_score(planted):
    x, _, als, _ = planted
    row = x.matrix[3]
    items = np.array([0, 7, 11])
    totals, terms = als.contributions(row, items, top=row.nnz)
    np.testing.assert_allclose(totals, als.fold_in(row)[0] @ als.item_factors_[items].T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([sum(c for _, c in t) for t in terms], totals, rtol=1e-4, atol=1e-5)
    assert all({j for j, _ in t} <= set(row.indices.tolist()) for t in terms)


def test_explain_names_history_items_and_the_nearest_per_modality(planted):
    x, feats, als, cluster = planted
    u = 2
    rec, _ = als.recommend(u, n=5)
    out = explain(als, x.matrix[u], rec, feats, user_idx=u)
    hist = set(x.matrix[u].indices.tolist())
    checked = 0
    for e in out:
        assert e.cf_method == "als" and {j for j, _ in e.cf} <= hist
        j, sim = e.similar["audio"]
        assert j in hist
        if cluster[e.item_idx] in cluster[list(hist)]:  # audio reveals the cluster
            assert cluster[j] == cluster[e.item_idx] and sim > 0.5
            checked += 1
        assert set(e.similar) == {"audio", "video"} and e.ranker is None
    assert checked >= 3
    d = out[0].to_dict(x.item_ids)
    assert d["similar"]["audio"]["phrase"].startswith("sounds like ") and d["cf"]["because"]


def test_models_without_cf_terms_still_get_content_reasons(planted):
    x, feats, _, _ = planted
    pop = make_model("popularity").fit(x)
    e = explain(pop, x.matrix[0], np.array([1, 2]), feats)[0]
    assert e.cf_method is None and "audio" in e.similar
    assert explain(pop, sp.csr_matrix((1, N_ITEMS), dtype=np.float32), np.array([1]), feats)[0].similar == {}


def test_removing_the_top_attributed_item_hurts_more_than_a_random_one(planted):
    x, _, als, _ = planted
    res = removal_test(als, x.matrix, np.arange(0, N_USERS, 3), seed=0)
    s = res.summary()
    assert s["users"] == 50
    assert s["ci95_low"] > 0, s  # paired: top-attributed removal lowers the rank more, significantly


def test_paired_interval():
    mean, lo, hi = paired_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and lo < 2.5 < hi
    with pytest.raises(ValueError):
        paired_interval(np.array([1.0]))
