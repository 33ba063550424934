"""The evaluation runner against a hand-worked example.

6 items; items 0-2 have training interactions (warm), 3-5 do not (cold).
user 0: train {0}, test {2, 4}; scores [.9 .8 .7 .1 .6 .2]
        ranking after excluding item 0: 1, 2, 4, 5, 3 -> top-2 = [1, 2], one hit at rank 2
        recall@2 = 1/2, precision@2 = 1/2, ndcg@2 = (1/log2 3) / (1 + 1/log2 3) = 0.386853
        AUC: positives 2 (.7), 4 (.6); negatives 1 (.8), 3 (.1), 5 (.2) -> 4 of 6 pairs = 2/3
user 1: train {1, 2}, test {5}; scores [.5 .9 .9 .3 .3 .4]
        ranking: 0, 5, 3, 4 -> top-2 = [0, 5], hit at rank 2
        recall@2 = 1, precision@2 = 1/2, ndcg@2 = 1/log2 3 = 0.630930
        AUC: positive 5 (.4); negatives 0 (.5), 3 (.3), 4 (.3) -> 2 of 3 = 2/3
warm segment (item 2 only, user 0): recall@2 = 1; AUC: pos 2 (.7) vs 1, 3, 5 (item 4 is held out,
        so neither positive nor negative) -> 2/3
cold segment: user 0 {4} missed -> 0, user 1 {5} hit -> 1: recall@2 = 1/2
warm_only (ranking warm items only): user 0 ranks [1, 2] -> item 2 hit -> recall@2 = 1
cold_only (ranking cold items only): user 0 ranks [4, 5, 3] -> hit; user 1 ranks [5, 3, 4] -> hit: 1
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.data import Interactions
from recsys.errors import SplitError
from recsys.evaluation import evaluate
from recsys.models import ALS, Popularity
from recsys.models.base import Recommender
from recsys.report import markdown_table, write_report

SCORES = np.array([[0.9, 0.8, 0.7, 0.1, 0.6, 0.2], [0.5, 0.9, 0.9, 0.3, 0.3, 0.4]], dtype=np.float32)


class FixedScores(Recommender):
    name = "fixed"

    def _fit(self, interactions, item_features):
        self.table_ = SCORES

    def _score_users(self, users, rows):
        return self.table_[users].copy()


@pytest.fixture()
def parts():
    users, items = np.arange(2), np.arange(6)
    train = Interactions.from_arrays([0, 1, 1], [0, 1, 2], user_ids=users, item_ids=items)
    test = Interactions.from_arrays([0, 0, 1], [2, 4, 5], user_ids=train.user_map, item_ids=train.item_map)
    return train, test


def test_hand_worked_metrics(parts):
    train, test = parts
    r = evaluate(FixedScores().fit(train), train, test, ks=(2,))
    a = r.segments["all"]
    assert a["users"] == 2
    assert a["recall@2"] == pytest.approx(0.75)
    assert a["precision@2"] == pytest.approx(0.5)
    assert a["ndcg@2"] == pytest.approx((0.386853 + 0.630930) / 2, abs=1e-6)
    assert a["hit_rate@2"] == pytest.approx(1.0)
    assert a["auc"] == pytest.approx(2 / 3)
    assert a["global_auc"] == pytest.approx(6 / 9)
    w, c = r.segments["warm"], r.segments["cold"]
    assert w["users"] == 1 and w["recall@2"] == pytest.approx(1.0) and w["auc"] == pytest.approx(2 / 3)
    assert c["users"] == 2 and c["recall@2"] == pytest.approx(0.5)
    assert r.segments["warm_only"]["users"] == 1 and r.segments["warm_only"]["recall@2"] == pytest.approx(1.0)
    assert r.segments["cold_only"]["users"] == 2 and r.segments["cold_only"]["recall@2"] == pytest.approx(1.0)
    np.testing.assert_allclose(r.recall_curve["all"], [0.0, 0.75])
    np.testing.assert_allclose(r.recall_curve["cold_only"], [1.0, 1.0])
    assert r.beyond_accuracy["coverage@2"] == pytest.approx(4 / 6)  # lists [1, 2] and [0, 5]


def test_batching_does_not_change_results(parts):
    train, test = parts
    m = FixedScores().fit(train)
    a = evaluate(m, train, test, ks=(1, 2, 3), roc_negatives=0)
    b = evaluate(m, train, test, ks=(1, 2, 3), batch_size=1, roc_negatives=0)
    assert a.segments == b.segments


def test_overlap_raises(parts):
    train, _ = parts
    with pytest.raises(SplitError, match="overlap"):
        evaluate(Popularity().fit(train), train, train)


def test_real_models_and_report(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 30
    u = rng.integers(0, n_users, 900)
    i = (u % 3) * 10 + rng.integers(0, 10, 900)  # three taste groups
    x = Interactions.from_arrays(u, i, user_ids=np.arange(n_users), item_ids=np.arange(n_items))
    from recsys.split import random_split

    s = random_split(x, 0.2, seed=0)
    results = [evaluate(m.fit(s.train), s.train, s.test, ks=(5, 10)) for m in (Popularity(), ALS(factors=6, iterations=8, regularization=0.05, alpha=10.0, weighting="none"))]
    pop, als = (r.segments["all"] for r in results)
    assert als["recall@10"] > pop["recall@10"], "ALS must beat popularity on planted tastes"
    assert als["auc"] > 0.8
    files = write_report(tmp_path, results, k=10, extra={"dataset": "toy"})
    assert {p.name for p in files} == {"results.json", "results.md", "recall_at_k.png", "roc.png"}
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["als"]["segments"]) == {"warm", "cold", "warm_only", "cold_only"}
    assert data["als"]["recall@10"] == pytest.approx(als["recall@10"])
    assert "| als |" in markdown_table(results, 10)
    assert (tmp_path / "roc.png").stat().st_size > 1000
