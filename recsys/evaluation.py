"""Run recommenders over held-out interactions with exact full ranking.

Protocol (the one behind the published TikTok table): for every test user, score ALL items,
exclude the user's training items only, rank, and compare the top-k with the user's held-out
items. AUC is exact per user over every item the user has not interacted with in train.

Segments split the *relevant* items, not the ranking: every user gets one list over all items,
where warm and cold items compete, and

- ``all``  counts every held-out item,
- ``warm`` counts held-out items that have training interactions,
- ``cold`` counts held-out items with none (items new at training time).

A user enters a segment's averages only if they have held-out items in it.

Two more segments follow the cold-start literature's protocol (DropoutNet, CLCRec), where the
*ranking itself* is restricted:

- ``warm_only`` ranks only warm items (cold items removed from the list) against held-out warm items,
- ``cold_only`` ranks only cold items against held-out cold items.

They measure how well a model orders each kind of item, independent of how many list slots it
gives to cold items; AUC is not reported for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys import metrics as M
from recsys.data.interactions import Interactions, check_disjoint
from recsys.errors import ConfigError
from recsys.metrics.inputs import check_scores_finite_rows
from recsys.models.base import Recommender, batch_size_for, mask_seen, top_n

RANKING_METRICS = ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate")
SEGMENTS = ("all", "warm", "cold", "warm_only", "cold_only")


@dataclass
class EvalResult:
    """Averages per segment for one model, plus the curves behind the plots.

    ``segments[seg][f"{metric}@{k}"]`` and ``segments[seg]["auc"]`` are means over users with
    held-out items in that segment; ``segments[seg]["users"]`` counts them.
    """

    model: str
    segments: dict[str, dict[str, float]]
    ks: tuple[int, ...]
    recall_curve: dict[str, np.ndarray] = field(default_factory=dict)
    roc_sample: tuple[np.ndarray, np.ndarray] | None = None
    beyond_accuracy: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    #: evaluation protocol (``published``, ``refit``; empty when run outside a protocol) and the
    #: parts the model learned from (``train``, ``train+val``)
    protocol: str = ""
    learned_from: str = ""

    def to_json(self) -> dict[str, Any]:
        """The report format: top-level ``all`` metrics plus ``segments`` {warm, cold}."""
        out: dict[str, Any] = dict(self.segments["all"])
        out.update(self.beyond_accuracy)
        out["segments"] = {s: self.segments[s] for s in SEGMENTS if s != "all" and s in self.segments}
        out["seconds"] = round(self.seconds, 3)
        out["protocol"] = self.protocol
        out["learned_from"] = self.learned_from
        out["params"] = self.params
        return out


class _Acc:
    """Per-user metric values collected over batches."""

    def __init__(self) -> None:
        self.values: dict[str, list[np.ndarray]] = {}

    def add(self, name: str, v: np.ndarray) -> None:
        self.values.setdefault(name, []).append(np.asarray(v, dtype=np.float64))

    def get(self, name: str) -> np.ndarray:
        parts = self.values.get(name)
        return np.concatenate(parts) if parts else np.empty(0)


def evaluate(
    model: Recommender,
    train: Interactions,
    test: Interactions,
    *,
    ks: tuple[int, ...] = (10, 20),
    auc: bool = True,
    segments: bool = True,
    item_vectors: np.ndarray | None = None,
    batch_size: int | None = None,
    roc_negatives: int = 20,
    seed: int = 0,
) -> EvalResult:
    """Evaluate a fitted model on ``test`` with exact full ranking.

    Parameters
    ----------
    model : Recommender
        Fitted on ``train`` (same id maps).
    train : Interactions
        Items to exclude per user (the user's training items).
    test : Interactions
        Held-out interactions; must not overlap ``train`` (raises ``SplitError``).
    ks : tuple of int
        Cut-offs.
    auc : bool
        Compute exact per-user AUC (one sort of each batch's score rows, shared by the segments).
    segments : bool
        Also report warm-item and cold-item segments.
    item_vectors : (n_items, d) float, optional
        For intra-list diversity.
    batch_size : int, optional
        Users per dense block; capped so one block stays under ~256 MiB.
    roc_negatives : int
        Negatives sampled per user for the ROC *plot* only (metrics are exact).
    """
    check_disjoint(train, test, ("train", "test"))
    ks = tuple(sorted(set(int(k) for k in ks)))
    if not ks or ks[0] < 1:
        raise ConfigError(f"cut-offs must be positive integers, got {ks}")
    t0 = time.perf_counter()
    kmax = max(ks)
    users = np.flatnonzero(test.user_counts() > 0)
    warm_items = train.item_counts() > 0
    seg_keep = {"all": None}
    restricted: dict[str, np.ndarray] = {}
    if segments:
        seg_keep.update({"warm": warm_items, "cold": ~warm_items})
        restricted = {"warm_only": warm_items, "cold_only": ~warm_items}
    accs = {s: _Acc() for s in [*seg_keep, *restricted]}
    auc_parts = {s: [] for s in seg_keep}
    curves: dict[str, list[np.ndarray]] = {s: [] for s in [*seg_keep, *restricted]}
    all_lists: list[np.ndarray] = []
    rng = np.random.default_rng(seed)
    roc_pos: list[np.ndarray] = []
    roc_neg: list[np.ndarray] = []
    train_m, test_m = train.matrix, test.matrix
    depth = min(train.n_items, 2 * kmax)
    bs = batch_size_for(train.n_items, batch_size)
    for start in range(0, len(users), bs):
        batch = users[start : start + bs]
        excl = train_m[batch]
        rel_all = test_m[batch]
        scores = model.scores(batch, excl)
        if auc:
            for s, counts in _auc_by_segment(scores, rel_all, excl, seg_keep).items():
                auc_parts[s].append(counts)
            if roc_negatives:
                _sample_roc(scores, rel_all, excl, roc_negatives, rng, roc_pos, roc_neg)
        mask_seen(scores, excl)
        cut = _segment_lists(scores, {"all": None, **restricted}, kmax, depth)
        ranked = cut["all"]
        all_lists.append(ranked)
        lists = {s: ranked for s in seg_keep}
        lists.update({s: cut[s] for s in restricted})
        for s, keep in {**seg_keep, **restricted}.items():
            rel = rel_all if keep is None else M.restrict_columns(rel_all, keep)
            ranked = lists[s]
            acc = accs[s]
            n_rel = np.diff(rel.indptr)
            acc.add("n_rel", n_rel)
            for k in ks:
                for name, values in M.ranking_metrics(ranked, rel, k, RANKING_METRICS).items():
                    acc.add(f"{name}@{k}", values)
            hits = M.hit_matrix(ranked, rel, kmax)
            with np.errstate(invalid="ignore", divide="ignore"):
                curves[s].append(np.where(n_rel[:, None] > 0, np.cumsum(hits, axis=1) / n_rel[:, None], np.nan))

    seg_out: dict[str, dict[str, float]] = {}
    for s, acc in accs.items():
        n_rel = acc.get("n_rel")
        row: dict[str, float] = {"users": int((n_rel > 0).sum())}
        for k in ks:
            for name in RANKING_METRICS:
                row[f"{name}@{k}"] = M.mean_over_users(acc.get(f"{name}@{k}"))
        if auc and s in auc_parts:
            correct = np.concatenate([p[0] for p in auc_parts[s]])
            n_pos = np.concatenate([p[1] for p in auc_parts[s]])
            n_neg = np.concatenate([p[2] for p in auc_parts[s]])
            with np.errstate(invalid="ignore", divide="ignore"):
                per_user = np.where((n_pos > 0) & (n_neg > 0), correct / (n_pos * n_neg), np.nan)
            row["auc"] = M.mean_over_users(per_user)
            row["global_auc"] = M.global_auc(correct, n_pos, n_neg)
        seg_out[s] = row

    lists = np.concatenate(all_lists) if all_lists else np.empty((0, kmax), dtype=np.int64)
    beyond = {
        f"coverage@{kmax}": M.catalog_coverage(lists, train.n_items, kmax),
        f"novelty@{kmax}": M.mean_over_users(
            M.novelty(lists, train.item_counts(), kmax, n_users=len(train.active_users()))
        ),
    }
    if item_vectors is not None:
        beyond[f"diversity@{kmax}"] = M.mean_over_users(M.intra_list_diversity(lists, item_vectors, kmax))
    curve = {s: _column_nanmean(np.concatenate(c) if c else np.empty((0, kmax))) for s, c in curves.items()}
    roc = (np.concatenate(roc_pos), np.concatenate(roc_neg)) if roc_pos else None
    return EvalResult(
        model=getattr(model, "name", type(model).__name__),
        segments=seg_out,
        ks=ks,
        recall_curve=curve,
        roc_sample=roc,
        beyond_accuracy=beyond,
        seconds=time.perf_counter() - t0,
        params=model.get_params(),
    )


def _column_nanmean(a: np.ndarray) -> np.ndarray:
    """Mean of each column over finite rows; NaN for a column with none (no warning)."""
    ok = ~np.isnan(a)
    n = ok.sum(axis=0)
    total = np.where(ok, a, 0.0).sum(axis=0)
    return np.divide(total, n, out=np.full(a.shape[1], np.nan), where=n > 0)


def _auc_by_segment(
    scores: np.ndarray, rel: sp.csr_matrix, excl: sp.csr_matrix, seg_keep: dict[str, np.ndarray | None]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Exact AUC counts of every segment from one sort of each row's negatives.

    Equal to ``M.auc_counts`` per segment: for segment ``s`` the positives are the held-out items
    in it, and held-out items outside it are neither positive nor negative, so the negatives
    (items neither seen in train nor held out) are the same for every segment. Each row's
    negatives are sorted once; every positive is placed among them by a binary search run for
    all positives of the batch together (no loop over users), which gives its count of negatives
    below plus half of those tied. A segment's counts are sums over its positives.

    Parameters
    ----------
    scores : (b, n_items) float32, before seen items are masked
    rel, excl : CSR (b, n_items), held-out and train items of the batch's users
    seg_keep : segment name -> (n_items,) bool mask of its items, or None for every item

    Returns
    -------
    dict of name -> (correct, n_pos, n_neg), each (b,) float64, as ``M.auc_counts`` returns
    """
    b, n_items = scores.shape
    check_scores_finite_rows(scores)
    rel_rows = np.repeat(np.arange(b, dtype=np.int64), np.diff(rel.indptr))
    exc_rows = np.repeat(np.arange(b, dtype=np.int64), np.diff(excl.indptr))
    n_pos_all = np.diff(rel.indptr).astype(np.float64)
    n_neg = n_items - n_pos_all - np.diff(excl.indptr).astype(np.float64)
    per_pos = np.zeros(rel.nnz, dtype=np.float64)
    if rel.nnz:
        pos = scores[rel_rows, rel.indices]
        neg = scores.copy()
        neg[exc_rows, excl.indices] = np.nan  # NaN sorts last: only negatives are searched
        neg[rel_rows, rel.indices] = np.nan
        neg.sort(axis=1)
        flat_at = rel_rows * n_items  # row starts in the flattened sorted block
        hi = n_neg.astype(np.int64)[rel_rows]
        below = _search_rows(neg.ravel(), flat_at, pos, hi, strict=True)
        # ties with negatives are rare in float scores: search again only where one exists
        at = np.minimum(below, np.maximum(hi - 1, 0))
        tied = np.flatnonzero((below < hi) & (neg.ravel()[flat_at + at] == pos))
        upto = below.copy()
        if len(tied):
            upto[tied] = _search_rows(neg.ravel(), flat_at[tied], pos[tied], hi[tied], strict=False)
        per_pos = below + 0.5 * (upto - below)
    out = {}
    for s, keep in seg_keep.items():
        take = slice(None) if keep is None else keep[rel.indices]
        correct = np.bincount(rel_rows[take], weights=per_pos[take], minlength=b).astype(np.float64)
        n_pos = np.bincount(rel_rows[take], minlength=b).astype(np.float64)
        out[s] = (correct, n_pos, n_neg)
    return out


def _search_rows(flat: np.ndarray, starts: np.ndarray, values: np.ndarray, length: np.ndarray, *,
                 strict: bool) -> np.ndarray:
    """Per query ``q``, how many of the sorted ``flat[starts[q] : starts[q] + length[q]]`` are
    ``<`` (``strict``) or ``<=`` ``values[q]``: a lower-bound binary search stepped for every
    query at once (no loop over users).

    Returns
    -------
    (m,) int64
    """
    first = np.zeros(len(values), dtype=np.int64)
    count = length.astype(np.int64, copy=True)
    last = flat.size - 1
    for _ in range(int(count.max(initial=0)).bit_length() + 1):  # each step halves every range
        step = count >> 1
        mid = first + step
        v = flat[np.minimum(starts + mid, last)]  # an empty range reads a valid cell, moves nowhere
        go = (v < values) if strict else (v <= values)
        go &= count > 0
        first = np.where(go, mid + 1, first)
        count = np.where(go, count - step - 1, step)
    return first


def _segment_lists(scores: np.ndarray, keeps: dict[str, np.ndarray | None], n: int, depth: int
                   ) -> dict[str, np.ndarray]:
    """``{name: (b, n) top_n(np.where(keep, scores, -inf), n)[0]}`` for each item mask (None: every
    item) of one batch, ``scores`` with seen items at -inf.

    One ranking ``depth`` deep serves every mask (:func:`_cut_from_deep`), except a mask of at
    most ``depth`` items (the cold items, usually), ranked over its own columns: that ranking
    lists every item of the mask, so it settles even rows whose items tie at the cut when they
    hold at most ``n`` unseen ones. Rows whose scores are all equal (a user without training
    items: ALS scores every item 0; on a temporal split most test users) are only ties, which no
    ranking settles: they are cut per mask directly.
    """
    b = scores.shape[0]
    flat = scores.max(axis=1) == scores.min(axis=1)  # no seen item (no -inf) and one value
    out = {name: np.empty((b, n), dtype=np.int64) for name in keeps}
    rest = np.flatnonzero(~flat)
    if len(rest):
        sub = scores if len(rest) == b else scores[rest]
        deep = None
        for name, keep in keeps.items():
            cols = None if keep is None else np.flatnonzero(keep)
            if cols is not None and len(cols) <= depth:
                idx, val = top_n(sub[:, cols], len(cols)) if len(cols) else (np.zeros((len(rest), 0), np.int64),
                                                                             np.zeros((len(rest), 0), np.float32))
                out[name][rest] = _cut_from_deep(np.where(idx >= 0, cols[np.maximum(idx, 0)], -1), val, sub, keep,
                                                 n, complete=True)
                continue
            if deep is None:
                deep = top_n(sub, depth)
            out[name][rest] = _cut_from_deep(*deep, sub, keep, n)
    same = np.flatnonzero(flat)
    if len(same):
        sub = scores[same]
        for name, keep in keeps.items():
            out[name][same] = top_n(sub if keep is None else np.where(keep[None, :], sub, -np.inf), n)[0]
    return out


def _cut_from_deep(deep_idx: np.ndarray, deep_val: np.ndarray, scores: np.ndarray, keep: np.ndarray | None,
                   n: int, complete: bool = False) -> np.ndarray:
    """(b, n) ``top_n(np.where(keep, scores, -inf), n)[0]`` (``keep`` None: every item), read from
    deeper lists of the same rows.

    ``top_n`` cuts with ``argpartition``, so *which* of several items tied at the cut it keeps
    depends on the row's layout; the Spark evaluator cuts the same way, and the two must agree.
    A row of ``deep`` settles the answer when its first ``n`` kept finite entries are followed by
    a kept entry of strictly lower score (the set is then unique, and ``deep`` orders it as
    ``top_n`` does: score descending, item index ascending), or when it lists every finite item of
    the row and holds at most ``n`` kept ones (the rest is ``-1`` padding). Other rows (a tie at
    the cut, too few kept items listed) are cut again over the masked row, as before this
    shortcut: with real-valued scores they are rare, so the segments cost one ranking instead of
    three (MovieLens-20M-sized evaluation, `bench/bench_scale.py`: 127 s -> 77 s).

    Parameters
    ----------
    deep_idx, deep_val : (b, m) from ``top_n(scores, m)``, ``m > n`` (or from the columns of
        ``keep`` alone, item indices mapped back, -1 padding)
    scores : (b, n_items) float32, seen items at -inf
    keep : (n_items,) bool or None
    complete : bool
        ``deep`` lists every item ``keep`` holds (a ranking over its columns alone).
    """
    b, m = deep_idx.shape
    ok = np.isfinite(deep_val) & (deep_idx >= 0)
    if keep is not None:
        ok &= keep[np.maximum(deep_idx, 0)]
    slot = np.cumsum(ok, axis=1) - 1
    out = np.full((b, n), -1, dtype=np.int64)
    r, c = np.nonzero(ok & (slot < n))
    out[r, slot[r, c]] = deep_idx[r, c]
    count = ok.sum(axis=1)
    # the n-th and (n+1)-th kept values of each row (-inf where the row has fewer)
    nth = np.full((b, 2), -np.inf)
    r, c = np.nonzero(ok & (slot >= n - 1) & (slot <= n))
    nth[r, slot[r, c] - (n - 1)] = deep_val[r, c]
    if complete or m == scores.shape[1]:
        every_finite_listed = np.ones(b, dtype=bool)
    else:  # a -inf at the end of a list means the row ran out of finite items before it
        every_finite_listed = ~np.isfinite(deep_val[:, -1])
    settled = np.where(count > n, nth[:, 0] > nth[:, 1], every_finite_listed)
    again = np.flatnonzero(~settled)
    if len(again):
        sub = scores[again] if keep is None else np.where(keep[None, :], scores[again], -np.inf)
        out[again] = top_n(sub, n)[0]
    return out


def _sample_roc(scores, rel, excl, n_neg, rng, pos_out, neg_out) -> None:
    """Pooled positive scores and a few random unobserved items' scores per user (plot only)."""
    b, n_items = scores.shape
    r = np.repeat(np.arange(b), np.diff(rel.indptr))
    pos_out.append(scores[r, rel.indices].astype(np.float32))
    cand = rng.integers(0, n_items, size=(b, n_neg))
    query = np.arange(b)[:, None] * n_items + cand
    bad = np.zeros_like(cand, dtype=bool)
    for m in (rel, excl):  # drop samples that hit observed items
        # canonical CSR: the row-major keys are sorted, so membership is one binary search
        keys = np.repeat(np.arange(b, dtype=np.int64), np.diff(m.indptr)) * n_items + m.indices
        if len(keys):
            at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
            bad |= keys[at] == query
    vals = np.take_along_axis(scores, cand, axis=1)[~bad]
    neg_out.append(vals.astype(np.float32))
