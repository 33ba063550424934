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


# --------------------------------------------------------------------------- plots (issue 16 item 7)
def _overlaps(a, b) -> bool:
    """Whether two display-space boxes share area (touching edges do not count)."""
    return a.x0 < b.x1 - 1 and b.x0 < a.x1 - 1 and a.y0 < b.y1 - 1 and b.y0 < a.y1 - 1


@pytest.fixture()
def warm_results():
    """Two models on a split whose held-out items were all seen in training (no cold items in test)."""
    users, items = np.arange(2), np.arange(6)
    train = Interactions.from_arrays([0, 0, 0, 1, 1, 1], [0, 1, 3, 2, 4, 5], user_ids=users, item_ids=items)
    test = Interactions.from_arrays([0, 1], [2, 0], user_ids=train.user_map, item_ids=train.item_map)
    return [evaluate(m.fit(train), train, test, ks=(2, 5, 10)) for m in (Popularity(), FixedScores())]


def test_plots_say_why_a_panel_is_empty_and_keep_legends_off_the_curves(warm_results, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.image import imread

    from recsys.report import plot_results, recall_figure, roc_figure

    assert warm_results[0].segments["cold"]["users"] == 0
    fig = recall_figure(warm_results)
    fig.canvas.draw()
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert set(panels) == {"recall@k (all items)", "recall@k (warm items)", "recall@k (cold items)",
                           "recall@k (cold items ranked alone)"}
    for title in ("recall@k (cold items)", "recall@k (cold items ranked alone)"):
        ax = panels[title]
        assert not ax.lines and any("no cold items in test" in t.get_text() for t in ax.texts)
    full = panels["recall@k (all items)"]
    assert len(full.lines) == 2 and not full.texts
    for ax in fig.axes:  # k is a count: integer ticks only, 1..10 in view
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert all(lab.lstrip("−-").isdigit() for lab in labels), labels
    assert full.get_xlim() == (1, 10)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["popularity", "fixed"]
    box = legend.get_window_extent()
    assert not any(_overlaps(box, ax.get_window_extent()) for ax in fig.axes)
    plt.close(fig)

    fig = roc_figure(warm_results)
    fig.canvas.draw()
    (ax,) = fig.axes
    legend = ax.get_legend()
    assert [t.get_text().split(" (")[0] for t in legend.get_texts()] == ["popularity", "fixed"]
    assert not _overlaps(legend.get_window_extent(), ax.get_window_extent())
    plt.close(fig)

    no_auc = [evaluate(Popularity().fit(Interactions.from_arrays([0], [0], user_ids=[0], item_ids=np.arange(3))),
                       Interactions.from_arrays([0], [0], user_ids=[0], item_ids=np.arange(3)),
                       Interactions.from_arrays([0], [1], user_ids=[0], item_ids=np.arange(3)), ks=(1,), auc=False)]
    fig = roc_figure(no_auc)
    assert any("evaluated without AUC" in t.get_text() for t in fig.axes[0].texts) and fig.axes[0].get_legend() is None
    plt.close(fig)
    fig = recall_figure(no_auc)  # one cut-off: one tick, k = 1
    assert all(list(ax.get_xticks()) == [1] for ax in fig.axes)
    plt.close(fig)

    # the PNGs hold the legends: the saved recall plot is wider than its four panels alone
    paths = plot_results(tmp_path, warm_results)
    assert [p.name for p in paths] == ["recall_at_k.png", "roc.png"]
    width = imread(paths[0]).shape[1]
    assert width > 4 * 4.2 * 110 * 0.95
