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


def _reference(model, train, test, ks):
    """The runner's definition written plainly: every segment scored on its own (one exact AUC
    call per segment, one ranking per restricted segment), as the runner did before it shared
    one sort and one ranking between segments."""
    from recsys import metrics as M
    from recsys.models.base import mask_seen, top_n

    users = np.flatnonzero(test.user_counts() > 0)
    warm = train.item_counts() > 0
    excl, rel_all = train.matrix[users], test.matrix[users]
    scores = model.scores(users, excl)
    out = {}
    for s, keep in {"all": None, "warm": warm, "cold": ~warm}.items():
        if keep is None:
            out[s] = {"auc": M.auc_counts(scores, rel_all, excl)}
        else:
            rel, other = M.restrict_columns(rel_all, keep), M.restrict_columns(rel_all, ~keep)
            out[s] = {"auc": M.auc_counts(scores, rel, (excl + other).tocsr())}
    masked = scores.copy()
    mask_seen(masked, excl)
    kmax = max(ks)
    lists = {s: top_n(masked, kmax)[0] for s in out}
    lists["warm_only"] = top_n(np.where(warm[None, :], masked, -np.inf), kmax)[0]
    lists["cold_only"] = top_n(np.where(~warm[None, :], masked, -np.inf), kmax)[0]
    for s, ranked in lists.items():
        keep = {"all": None, "warm": warm, "cold": ~warm, "warm_only": warm, "cold_only": ~warm}[s]
        rel = rel_all if keep is None else M.restrict_columns(rel_all, keep)
        row = out.setdefault(s, {})
        for k in ks:
            for name, v in M.ranking_metrics(ranked, rel, k).items():
                row[f"{name}@{k}"] = M.mean_over_users(v)
        if "auc" in row:
            c, p, n = row.pop("auc")
            with np.errstate(invalid="ignore", divide="ignore"):
                row["auc"] = M.mean_over_users(np.where((p > 0) & (n > 0), c / (p * n), np.nan))
            row["global_auc"] = M.global_auc(c, p, n)
    return out


class TableScores(Recommender):
    """Random scores without ties (float32 draws), fixed per seed."""

    name = "table"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit(self, interactions, item_features):
        self.table_ = np.random.default_rng(self.seed).random(interactions.shape, dtype=np.float32)

    def _score_users(self, users, rows):
        return self.table_[users].copy()


@pytest.mark.parametrize("model", ["table", "als"])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_runner_equals_the_plain_definition_on_every_segment(model, batch_size):
    """Shared sort, shared ranking and the batched binary search change no number, on a log
    with cold items (held out wholly), users with many held-out items (the midrank path of
    ``auc_counts``) and with few (its comparison path).

    ALS scores every cold item 0 (no factors): its ``cold_only`` lists are ties only, which
    ``top_n`` breaks by argpartition's choice, so that segment is compared on tie-free scores."""
    rng = np.random.default_rng(3)
    n_users, n_items = 80, 120
    u = rng.integers(0, n_users, 3000)
    i = np.minimum((u % 4) * 25 + rng.geometric(0.05, 3000), n_items - 1)
    x = Interactions.from_arrays(u, i, user_ids=np.arange(n_users), item_ids=np.arange(n_items))
    _, cols, _, _ = x.to_coo()
    # a random 30% of each pair to test, and every pair of 12 items (cold in train)
    held = (rng.random(x.nnz) < 0.3) | np.isin(cols, rng.choice(n_items, 12, replace=False))
    train, test = x.subset(~held), x.subset(held)
    cold = train.item_counts() == 0
    assert test.matrix[:, cold].nnz > 20 and test.matrix[:, ~cold].nnz > 20
    m = (TableScores(3) if model == "table" else ALS(factors=8, iterations=4, weighting="none", regularization=0.1))
    m.fit(train)
    got = evaluate(m, train, test, ks=(3, 10), batch_size=batch_size, roc_negatives=0).segments
    want = _reference(m, train, test, (3, 10))
    if model == "als":
        del want["cold_only"]
    for seg, row in want.items():
        for name, v in row.items():
            assert got[seg][name] == pytest.approx(v, nan_ok=True, rel=1e-12), (seg, name)


def test_runner_raises_on_nan_scores(parts):
    train, test = parts

    class NaNScores(FixedScores):
        def _score_users(self, users, rows):
            out = self.table_[users].copy()
            out[:, 3] = np.nan
            return out

    with pytest.raises(Exception, match="NaN"):
        evaluate(NaNScores().fit(train), train, test, ks=(2,))


@pytest.mark.parametrize("levels", [3, 50, 0])
def test_shared_auc_pass_equals_auc_counts_per_segment_with_ties_and_infinities(levels):
    """The one-sort AUC of every segment against ``auc_counts`` run per segment; few score levels
    (many ties) and infinite scores included."""
    import scipy.sparse as sp

    from recsys import metrics as M
    from recsys.evaluation import _auc_by_segment

    rng = np.random.default_rng(levels)
    b, n = 40, 90
    scores = rng.random((b, n)).astype(np.float32)
    if levels:
        scores = np.floor(scores * levels).astype(np.float32)
    scores[rng.random((b, n)) < 0.05] = np.inf
    scores[rng.random((b, n)) < 0.05] = -np.inf
    kind = rng.random((b, n))
    excl = sp.csr_matrix(kind < 0.2)
    rel = sp.csr_matrix((kind >= 0.2) & (kind < 0.2 + rng.random((b, 1)) * 0.2))
    warm = rng.random(n) < 0.7
    got = _auc_by_segment(scores, rel, excl, {"all": None, "warm": warm, "cold": ~warm})
    for s, keep in {"all": None, "warm": warm, "cold": ~warm}.items():
        if keep is None:
            want = M.auc_counts(scores, rel, excl)
        else:
            other = M.restrict_columns(rel, ~keep)
            want = M.auc_counts(scores, M.restrict_columns(rel, keep), (excl + other).tocsr())
        for g, w in zip(got[s], want):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("levels", [3, 50, None], ids=["tie-heavy", "some-ties", "continuous"])
def test_lists_from_the_deep_ranking_equal_the_masked_cut(levels):
    """The evaluator's lists (all, warm-only, cold-only) come from one ranking twice as deep; each
    must equal top_n over the masked row, tied items at the cut included (the Spark evaluator cuts
    that way)."""
    from recsys.evaluation import _cut_from_deep
    from recsys.models.base import top_n

    rng = np.random.default_rng(7)
    for trial in range(30):
        b, n_items, n = 12, int(rng.integers(5, 60)), int(rng.integers(1, 8))
        scores = (rng.integers(0, levels, (b, n_items)) if levels else rng.standard_normal((b, n_items)))
        scores = scores.astype(np.float32)
        scores[rng.random((b, n_items)) < rng.uniform(0, 0.7)] = -np.inf  # seen items
        depth = min(n_items, 2 * n)
        deep_idx, deep_val = top_n(scores, depth)
        for keep in (None, rng.random(n_items) < 0.8, rng.random(n_items) < 0.15):
            want = top_n(scores if keep is None else np.where(keep[None, :], scores, -np.inf), n)[0]
            np.testing.assert_array_equal(_cut_from_deep(deep_idx, deep_val, scores, keep, n), want,
                                          err_msg=f"trial {trial}")


def test_segment_lists_with_rows_of_one_value():
    """Rows whose scores are all equal (users without training items under ALS) skip the deep
    ranking; every list still equals the masked cut."""
    from recsys.evaluation import _segment_lists
    from recsys.models.base import top_n

    rng = np.random.default_rng(3)
    scores = rng.standard_normal((10, 40)).astype(np.float32)
    scores[[1, 4, 5]] = 0.0  # one value, no seen item
    scores[7, :] = 2.0
    scores[7, 3] = -np.inf  # one value and a seen item: not "flat", goes through the deep ranking
    keeps = {"all": None, "warm": rng.random(40) < 0.7, "cold": rng.random(40) < 0.2}
    got = _segment_lists(scores, keeps, 5, 10)
    for name, keep in keeps.items():
        want = top_n(scores if keep is None else np.where(keep[None, :], scores, -np.inf), 5)[0]
        np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("levels", [2, 4, None], ids=["tie-heavy", "ties", "continuous"])
def test_segment_lists_equal_the_masked_cut(levels):
    """Every list of _segment_lists, through the deep ranking or a small mask's own columns (at
    most ``depth`` items), equals top_n over the masked row, ties at the cut included."""
    from recsys.evaluation import _segment_lists
    from recsys.models.base import top_n

    rng = np.random.default_rng(11)
    for trial in range(40):
        b, n_items, n = 9, int(rng.integers(4, 70)), int(rng.integers(1, 8))
        scores = (rng.integers(0, levels, (b, n_items)) if levels else rng.standard_normal((b, n_items)))
        scores = scores.astype(np.float32)
        scores[rng.random((b, n_items)) < rng.uniform(0, 0.6)] = -np.inf
        scores[0] = 1.0  # a row of one value
        depth = min(n_items, 2 * n)
        keeps = {"all": None, "big": rng.random(n_items) < 0.8,
                 "small": np.isin(np.arange(n_items), rng.choice(n_items, min(n_items, int(rng.integers(0, depth + 1))),
                                                                    replace=False))}
        got = _segment_lists(scores, keeps, n, depth)
        for name, keep in keeps.items():
            want = top_n(scores if keep is None else np.where(keep[None, :], scores, -np.inf), n)[0]
            np.testing.assert_array_equal(got[name], want, err_msg=f"trial {trial} {name}")
