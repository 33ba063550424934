"""Quality bounds from the demo's hidden answer: the true affinity and the item oracle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError
from recsys.synthetic.oracle import ItemOracle, TruthOracle, item_attributes, true_affinity

# 2 clusters, 4 items, 3 users; values small enough to work by hand
TRUTH = {
    "params": {"n_clusters": 2},
    "items": [
        {"item_id": "i1", "cluster": 0, "energy": 0.0, "popularity": 1.0},
        {"item_id": "i2", "cluster": 1, "energy": 0.5, "popularity": 0.5},
        {"item_id": "i3", "cluster": 0, "energy": 1.0, "popularity": 0.25},
        {"item_id": "i4", "cluster": 1, "energy": 0.2, "popularity": 0.1},
    ],
    "users": [
        {"user_id": "a", "taste": [0.8, 0.2], "energy_pref": 0.0, "energy_weight": 0.08},
        {"user_id": "b", "taste": [0.5, 0.5], "energy_pref": 0.5, "energy_weight": 0.16},
        {"user_id": "c", "taste": [0.1, 0.9], "energy_pref": 1.0, "energy_weight": 0.04},
    ],
}


@pytest.fixture()
def truth_path(tmp_path):
    p = tmp_path / "truth.json"
    p.write_text(json.dumps(TRUTH))
    return str(p)


@pytest.fixture()
def log() -> Interactions:
    return Interactions.from_arrays(["a", "a", "b", "c"], ["i1", "i3", "i2", "i4"],
                                    user_ids=["a", "b", "c"], item_ids=["i1", "i2", "i3", "i4"])


def test_true_affinity_by_hand():
    a = true_affinity(TRUTH, np.array(["a"]), np.array(["i1", "i2", "i3"]))
    # user a: 2 log(taste_c / 0.8) - 0.08 (e - 0)^2 / 0.08 + log popularity
    expected = [0.0 - 0.0 + 0.0,
                2 * np.log(0.2 / 0.8) - 0.25 + np.log(0.5),
                0.0 - 1.0 + np.log(0.25)]
    np.testing.assert_allclose(a[0], expected, rtol=1e-6)


def test_affinity_is_linear_in_the_item_attributes():
    """The item oracle's premise: for each user some vector x_u gives affinity = attributes @ x_u."""
    users, items = np.array(["a", "b", "c"]), np.array(["i1", "i2", "i3", "i4"])
    attrs = item_attributes(TRUTH, items)
    assert attrs.shape == (4, 2 + 4)
    aff = true_affinity(TRUTH, users, items)
    for row, u in zip(aff, TRUTH["users"]):
        t, p, w = np.array(u["taste"]), u["energy_pref"], u["energy_weight"]
        x = np.concatenate([2 * np.log(t / t.max()), [2 * w * p / 0.08, -w / 0.08, -w * p * p / 0.08, 1.0]])
        np.testing.assert_allclose(attrs @ x, row, rtol=1e-5, atol=1e-6)


def test_truth_oracle_ranks_by_affinity_without_seen_items(truth_path, log):
    m = TruthOracle(truth_path).fit(log)
    idx, _ = m.recommend(0, n=2)  # user a saw i1 and i3
    aff = true_affinity(TRUTH, np.array(["a"]), np.array(["i1", "i2", "i3", "i4"]))[0]
    assert list(idx) == ([1, 3] if aff[1] > aff[3] else [3, 1])


def test_item_oracle_solves_the_weighted_ridge(truth_path, log):
    m = ItemOracle(truth_path, alpha=3.0, regularization=0.5).fit(log)
    a = item_attributes(TRUTH, log.item_ids)
    for u, seen in enumerate([[0, 2], [1], [3]]):
        # the same problem as weighted least squares on stacked rows: sqrt(c) a_i x = sqrt(c) p_i,
        # plus sqrt(reg) I x = 0
        c = np.ones(4)
        p = np.zeros(4)
        c[seen], p[seen] = 4.0, 1.0
        lhs = np.vstack([np.sqrt(c)[:, None] * a, np.sqrt(0.5) * np.eye(a.shape[1])])
        rhs = np.concatenate([np.sqrt(c) * p, np.zeros(a.shape[1])])
        x = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
        np.testing.assert_allclose(m.user_vectors_[u], x, rtol=1e-6, atol=1e-8)
    s = m.scores(np.array([0, 1, 2]))
    np.testing.assert_allclose(s[1], (m.user_vectors_[1] @ a.T).astype(np.float32), rtol=1e-6)


def test_unknown_ids_and_bad_settings(truth_path, tmp_path):
    other = Interactions.from_arrays(["z"], ["i1"])
    with pytest.raises(DataError, match="users are not in the truth file"):
        TruthOracle(truth_path).fit(other)
    with pytest.raises(DataError, match="items are not in the truth file"):
        item_attributes(TRUTH, np.array(["i9"]))
    with pytest.raises(DataError, match="cannot read"):
        TruthOracle(str(tmp_path / "none.json")).fit(other)
    with pytest.raises(ConfigError, match="alpha > 0"):
        ItemOracle(truth_path, alpha=0.0).fit(other)


def test_fit_item_oracle_chooses_on_val(truth_path, log):
    from recsys.evaluation import evaluate
    from recsys.synthetic.oracle import fit_item_oracle

    val = Interactions.from_arrays(["a", "b", "c"], ["i2", "i3", "i1"], user_ids=log.user_ids, item_ids=log.item_ids)
    grid = ((0.1, 100.0), (1.0, 0.1))  # a penalty of 100 flattens every user: recall@1 0 against 1/3
    got = fit_item_oracle(truth_path, log, val, grid=grid, k=1)
    recalls = [evaluate(ItemOracle(truth_path, alpha=a, regularization=r).fit(log), log, val, ks=(1,), auc=False,
                        segments=False).segments["all"]["recall@1"] for a, r in grid]
    assert recalls[0] < recalls[1]
    assert (got.alpha, got.regularization) == grid[1]
