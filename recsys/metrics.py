"""Offline evaluation metrics: ranking accuracy, exact AUC and list-level measures.

Pure functions over plain arrays; nothing here loads data, trains or knows about models.

Conventions shared by every function (the evaluation runner relies on them):

``ranked``
    ``(n_users, n)`` integer array of item indices, best first, padded at the end with ``-1``
    where a user's list is shorter than ``n``. Padding must be trailing and an item may appear
    only once per row (checked inside the first ``k`` columns; a violation raises
    :class:`~recsys.errors.DataError`).
``relevant``
    scipy sparse matrix ``(n_users, n_items)`` (CSR preferred), rows aligned with ``ranked``.
    Relevance is binary and structural: every *stored* entry is a relevant item, whatever its
    value (an explicit zero counts, as in :class:`~recsys.data.interactions.Interactions`, which
    keeps zero-weight pairs); duplicate entries count once.
``k``
    Cut-off, ``1 <= k <= ranked.shape[1]``; a longer ``k`` than the list is an error because the
    caller must rank at least ``k`` items.

Every per-user metric returns a ``(n_users,)`` float64 array; users without relevant items get
NaN so that :func:`mean_over_users` (a NaN-aware mean) averages over users that have test items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import scipy.sparse as sp

from recsys.errors import DataError

__all__ = [
    "METRICS",
    "auc_counts",
    "auc_per_user",
    "catalog_coverage",
    "f1_at_k",
    "gini_index",
    "global_auc",
    "hit_matrix",
    "hit_rate_at_k",
    "intra_list_diversity",
    "map_at_k",
    "mean_over_users",
    "mrr",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "restrict_columns",
]

# Above this many positives in some row the comparison path (two passes over the batch per positive
# slot) costs more than one sort of every row, so auc_counts switches to midranks. Measured on
# (1024, 6710) float32 scores: compare 13 ms + ~7.5 ms per extra slot, sort-based ~40 ms flat.
AUC_COMPARE_MAX_POSITIVES = 4


# ---------------------------------------------------------------------------------- validation
def _check_ranked(ranked: np.ndarray, k: int | None, n_items: int | None) -> tuple[np.ndarray, int]:
    """Validate ``ranked`` and ``k``; return the first ``k`` columns as int64 and ``k``."""
    arr = np.asarray(ranked)
    if arr.ndim != 2:
        raise DataError(
            f"ranked must be a 2-D (n_users, n) array of item indices, got shape {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        raise DataError(
            f"ranked must hold integer item indices (padded with -1), got dtype {arr.dtype}; "
            "cast it with .astype(np.int64)"
        )
    n = arr.shape[1]
    if k is None:
        k = n
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise DataError(f"k must be an integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise DataError(f"k must be at least 1, got {k}")
    if k > n:
        raise DataError(f"k={k} but ranked holds only {n} items per user; rank at least k items")
    top = arr[:, :k].astype(np.int64, copy=False)
    if top.size:
        low = int(top.min())
        if low < -1:
            raise DataError(f"ranked holds item index {low}; only -1 may be used, as padding")
        high = int(top.max())
        if n_items is not None and high >= n_items:
            raise DataError(f"ranked holds item index {high} but there are only {n_items} items")
        pad = top < 0
        # A real item after padding would be read at the wrong rank by every position-aware metric.
        gap = pad[:, :-1] & ~pad[:, 1:]
        if gap.any():
            user = int(np.flatnonzero(gap.any(axis=1))[0])
            raise DataError(f"ranked row {user} has an item after -1 padding; padding must be trailing")
        if k > 1:
            s = np.sort(top, axis=1)
            dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
            if dup.any():
                user = int(np.flatnonzero(dup.any(axis=1))[0])
                raise DataError(
                    f"ranked row {user} lists an item twice in its top {k}; "
                    "a ranking must not repeat items"
                )
    return top, k


def _check_sparse(
    matrix: sp.spmatrix | sp.sparray, name: str, n_rows: int | None = None
) -> sp.csr_matrix:
    """Return ``matrix`` as canonical CSR (sorted, no duplicates); values are left untouched."""
    if not sp.issparse(matrix):
        raise DataError(
            f"{name} must be a scipy sparse (n_users, n_items) matrix, got {type(matrix).__name__}; "
            "build it with scipy.sparse.csr_matrix"
        )
    if len(matrix.shape) != 2:
        raise DataError(f"{name} must be 2-D, got shape {matrix.shape}")
    if n_rows is not None and matrix.shape[0] != n_rows:
        raise DataError(
            f"{name} has {matrix.shape[0]} rows but there are {n_rows} users; align the rows"
        )
    m = sp.csr_matrix(matrix)
    if not m.has_canonical_format:
        m = m.copy()  # never sort or merge the caller's matrix in place
        m.sum_duplicates()
    return m


def _relevance(
    ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate the inputs of a ranking metric; return ``(hits, n_rel, k)``.

    ``hits`` is ``(n_users, k)`` bool and ``n_rel`` ``(n_users,)`` int64.
    """
    n_users = np.shape(ranked)[0] if np.ndim(ranked) == 2 else None
    rel = _check_sparse(relevant, "relevant", n_users)
    top, k = _check_ranked(ranked, k, rel.shape[1])
    return _hits(top, rel), np.diff(rel.indptr).astype(np.int64), k


def _hits(top: np.ndarray, rel: sp.csr_matrix) -> np.ndarray:
    """Membership of ``top[u, j]`` in row ``u`` of canonical CSR ``rel``, without a loop over users.

    Row ``u``'s items are mapped to keys ``u * n_items + item``; canonical CSR stores them sorted
    row by row, so the key array is globally sorted and one ``searchsorted`` answers every query.
    """
    n_users, n_items = rel.shape
    if rel.nnz == 0 or top.size == 0:
        return np.zeros(top.shape, dtype=bool)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(rel.indptr))
    keys = rows * n_items + rel.indices.astype(np.int64)
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + top
    pos = np.searchsorted(keys, query)
    found = keys[np.minimum(pos, keys.size - 1)] == query
    return found & (top >= 0)  # -1 padding can alias the previous row's last item; never a hit


def _with_nan(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    out[n_rel == 0] = np.nan
    return out


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


# ------------------------------------------------------------------------- from a hit matrix
# These work on a precomputed hit matrix so ranking_metrics builds it once for all metrics.
def _precision(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    return _with_nan(hits.sum(axis=1) / k, n_rel)


def _recall(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _with_nan(hits.sum(axis=1) / n_rel, n_rel)


def _f1(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    p = _precision(hits, n_rel, k)
    r = _recall(hits, n_rel, k)
    denom = p + r
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(denom > 0, 2.0 * p * r / np.where(denom > 0, denom, 1.0), 0.0)
    return _with_nan(f, n_rel)


def _ndcg(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    disc = _discounts(k)
    dcg = hits @ disc
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return _with_nan(dcg / ideal, n_rel)


def _map(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    prec = np.cumsum(hits, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    ap = (prec * hits).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _with_nan(ap / np.minimum(n_rel, k), n_rel)


def _mrr(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    any_hit = hits.any(axis=1)
    first = np.argmax(hits, axis=1)  # index of the first True; 0 when there is none
    return _with_nan(np.where(any_hit, 1.0 / (first + 1.0), 0.0), n_rel)


def _hit_rate(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    return _with_nan(hits.any(axis=1).astype(np.float64), n_rel)


_FROM_HITS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "ndcg": _ndcg,
    "map": _map,
    "mrr": _mrr,
    "hit_rate": _hit_rate,
}


# ------------------------------------------------------------------------------ public ranking
def restrict_columns(rows: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """Copy of CSR ``rows`` keeping only entries whose column is marked in ``keep`` (n_items,) bool:
    the relevant items of one segment (warm or cold items) for any metric here."""
    r = rows.tocoo()
    m = keep[r.col]
    return sp.csr_matrix((r.data[m], (r.row[m], r.col[m])), shape=rows.shape)


def hit_matrix(
    ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int | None = None
) -> np.ndarray:
    """Whether each ranked item is relevant to its user.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded at the end.
    relevant : (n_users, n_items) scipy sparse
        Stored entries are the held-out relevant items (values ignored).
    k : int, optional
        Cut-off, ``1 <= k <= n``; the whole list when omitted.

    Returns
    -------
    (n_users, k) bool
        ``hits[u, j]`` is true when ``ranked[u, j]`` is a stored entry of row ``u``; padding is
        never a hit.
    """
    hits, _, _ = _relevance(ranked, relevant, k)
    return hits


def precision_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Precision@k: relevant items among the top ``k``, divided by ``k``.

    The denominator is ``k`` even when a user's list is shorter (the standard definition: a
    recommender that returns fewer items is not rewarded for it).

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded at the end.
    relevant : (n_users, n_items) scipy sparse
        Stored entries are the held-out relevant items (values ignored).
    k : int
        Cut-off, ``1 <= k <= n``.

    Returns
    -------
    (n_users,) float64
        One value per user; NaN for users without relevant items.

    Raises
    ------
    DataError
        On misaligned shapes, a bad ``k``, indices out of range, repeated items or padding
        that is not trailing.
    """
    return _precision(*_relevance(ranked, relevant, k))


def recall_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Recall@k: relevant items among the top ``k``, divided by the user's number of relevant items.

    Not capped: a user with more than ``k`` relevant items cannot reach 1.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded at the end.
    relevant : (n_users, n_items) scipy sparse
        Stored entries are the held-out relevant items (values ignored).
    k : int
        Cut-off, ``1 <= k <= n``.

    Returns
    -------
    (n_users,) float64
        One value per user; NaN for users without relevant items.

    Raises
    ------
    DataError
        On misaligned shapes, a bad ``k``, indices out of range, repeated items or padding
        that is not trailing.
    """
    return _recall(*_relevance(ranked, relevant, k))


def f1_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """F1@k: harmonic mean of precision@k and recall@k, 0 when both are 0.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded at the end.
    relevant : (n_users, n_items) scipy sparse
        Stored entries are the held-out relevant items (values ignored).
    k : int
        Cut-off, ``1 <= k <= n``.

    Returns
    -------
    (n_users,) float64
        One value per user; NaN for users without relevant items.

    Raises
    ------
    DataError
        On misaligned shapes, a bad ``k``, indices out of range, repeated items or padding
        that is not trailing.
    """
    return _f1(*_relevance(ranked, relevant, k))


def ndcg_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """NDCG@k with binary relevance.

    ``DCG = sum_j hit_j / log2(j + 2)`` over 0-based positions ``j < k``; the ideal DCG puts
    ``min(n_rel, k)`` hits at the top.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded at the end.
    relevant : (n_users, n_items) scipy sparse
        Stored entries are the held-out relevant items (values ignored).
    k : int
        Cut-off, ``1 <= k <= n``.

    Returns
    -------
    (n_users,) float64
        One value per user; NaN for users without relevant items.

    Raises
    ------
    DataError
        On misaligned shapes, a bad ``k``, indices out of range, repeated items or padding
        that is not trailing.
    """
    return _ndcg(*_relevance(ranked, relevant, k))


def map_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Average precision truncated at ``k`` (MAP@k once averaged over users).

    ``AP@k = sum_j precision@(j+1) * hit_j / min(n_rel, k)``, so a list whose top ``k`` is all
    relevant scores 1 even when the user has more than ``k`` relevant items.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded at the end.
    relevant : (n_users, n_items) scipy sparse
        Stored entries are the held-out relevant items (values ignored).
    k : int
        Cut-off, ``1 <= k <= n``.

    Returns
    -------
    (n_users,) float64
        One value per user; NaN for users without relevant items.

    Raises
    ------
    DataError
        On misaligned shapes, a bad ``k``, indices out of range, repeated items or padding
        that is not trailing.
    """
    return _map(*_relevance(ranked, relevant, k))


def mrr(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int | None = None) -> np.ndarray:
    """Reciprocal rank of the first relevant item (1-based), 0 if none is in the top ``k``.

    ``k`` defaults to the whole list. The mean over users is the mean reciprocal rank.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded at the end.
    relevant : (n_users, n_items) scipy sparse
        Stored entries are the held-out relevant items (values ignored).
    k : int, optional
        Cut-off, ``1 <= k <= n``; the whole list when omitted.

    Returns
    -------
    (n_users,) float64
        One value per user; NaN for users without relevant items.

    Raises
    ------
    DataError
        On misaligned shapes, a bad ``k``, indices out of range, repeated items or padding
        that is not trailing.
    """
    return _mrr(*_relevance(ranked, relevant, k))


def hit_rate_at_k(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """HitRate@k: 1 if any relevant item is in the top ``k``, else 0.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded at the end.
    relevant : (n_users, n_items) scipy sparse
        Stored entries are the held-out relevant items (values ignored).
    k : int
        Cut-off, ``1 <= k <= n``.

    Returns
    -------
    (n_users,) float64
        One value per user; NaN for users without relevant items.

    Raises
    ------
    DataError
        On misaligned shapes, a bad ``k``, indices out of range, repeated items or padding
        that is not trailing.
    """
    return _hit_rate(*_relevance(ranked, relevant, k))


#: Ranking metrics by name; each is called as ``METRICS[name](ranked, relevant, k)``.
METRICS: dict[str, Callable[..., np.ndarray]] = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "f1": f1_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "mrr": mrr,
    "hit_rate": hit_rate_at_k,
}


def ranking_metrics(
    ranked: np.ndarray,
    relevant: sp.spmatrix | sp.sparray,
    k: int,
    names: tuple[str, ...] | list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Several ranking metrics at once, validating the inputs and building the hit matrix once.

    Parameters
    ----------
    ranked, relevant, k
        As for the single metrics.
    names : sequence of str, optional
        Keys of :data:`METRICS`; all of them when omitted.

    Returns
    -------
    dict of str to (n_users,) float64
        Identical to ``{name: METRICS[name](ranked, relevant, k)}``.
    """
    names = tuple(METRICS) if names is None else tuple(names)
    unknown = [n for n in names if n not in _FROM_HITS]
    if unknown:
        raise DataError(f"unknown metric name(s) {unknown}; choose from {sorted(METRICS)}")
    hits, n_rel, k = _relevance(ranked, relevant, k)
    return {n: _FROM_HITS[n](hits, n_rel, k) for n in names}


def mean_over_users(values: np.ndarray) -> float:
    """Mean of a per-user metric over the users that have a value.

    Parameters
    ----------
    values : (n_users,) float
        NaN marks users without relevant items.

    Returns
    -------
    float
        ``nanmean(values)``; NaN (without a warning) when every value is NaN or there are none.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    if not ok.any():
        return float("nan")
    return float(v[ok].mean())


# ------------------------------------------------------------------------------------- AUC
def auc_counts(
    scores: np.ndarray,
    relevant: sp.spmatrix | sp.sparray,
    exclude: sp.spmatrix | sp.sparray,
    *,
    method: Literal["auto", "compare", "rank"] = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact per-user ROC AUC counts over every item the user did not interact with in train.

    For user ``u`` the positives are the stored entries of ``relevant[u]`` and the negatives are
    every other item that is not a stored entry of ``exclude[u]``. A (positive, negative) pair is
    correct when the positive scores higher; a tie counts one half. ``-inf`` and ``+inf`` scores
    are ordinary values (two ``-inf`` tie).

    Parameters
    ----------
    scores : (b, n_items) float32 or float64
        Model scores for a batch of ``b`` users (integer arrays are compared as float64).
    relevant : (b, n_items) scipy sparse
        Held-out relevant items (values ignored).
    exclude : (b, n_items) scipy sparse
        Train items, left out of both positives and negatives (values ignored).
    method : {"auto", "compare", "rank"}
        ``"compare"`` counts, for each positive, the negatives below and equal to it with one
        vectorised pass over the batch per positive slot (fast when every user has few
        positives); ``"rank"`` sorts each row's negatives once and places every positive with a
        binary search, which gives its midrank among the candidates. ``"auto"`` compares when no
        row has more than ``AUC_COMPARE_MAX_POSITIVES`` (4) positives. Both are exact and
        return identical counts.

    Returns
    -------
    correct : (b,) float64
        Correctly ordered pairs plus half the tied pairs.
    n_pos : (b,) float64
        Positives per user.
    n_neg : (b,) float64
        Negatives per user; AUC is ``correct / (n_pos * n_neg)``.

    Raises
    ------
    DataError
        On NaN scores, misaligned shapes, or items that are both relevant and excluded (that
        means the train/test split leaks).
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise DataError(f"scores must be a 2-D (b, n_items) array, got shape {s.shape}")
    if s.dtype.kind in "iub":
        s = s.astype(np.float64)  # exact for |score| < 2**53
    elif s.dtype.kind != "f":
        raise DataError(f"scores must be floating point, got dtype {s.dtype}")
    b, n_items = s.shape
    rel = _check_sparse(relevant, "relevant", b)
    exc = _check_sparse(exclude, "exclude", b)
    for name, m in (("relevant", rel), ("exclude", exc)):
        if m.shape[1] != n_items:
            raise DataError(f"{name} has {m.shape[1]} item columns but scores have {n_items}")
    if method not in ("auto", "compare", "rank"):
        raise DataError(f"method must be 'auto', 'compare' or 'rank', got {method!r}")
    if np.isnan(s).any():
        rows = np.flatnonzero(np.isnan(s).any(axis=1))
        raise DataError(
            f"scores contain NaN in {rows.size} of {b} rows (first row {int(rows[0])}); "
            "a model must score every item"
        )

    rel_rows = np.repeat(np.arange(b, dtype=np.int64), np.diff(rel.indptr))
    exc_rows = np.repeat(np.arange(b, dtype=np.int64), np.diff(exc.indptr))
    # Canonical CSR keys are sorted and unique, so the overlap is one sorted intersection.
    both = np.intersect1d(
        rel_rows * n_items + rel.indices, exc_rows * n_items + exc.indices, assume_unique=True
    )
    if both.size:
        raise DataError(
            f"{both.size} (user, item) pairs are both relevant and excluded (in "
            f"{np.unique(both // n_items).size} rows, first row {int(both[0] // n_items)}); "
            "train and test overlap, fix the split"
        )
    n_pos = np.diff(rel.indptr).astype(np.float64)
    n_neg = n_items - n_pos - np.diff(exc.indptr).astype(np.float64)

    max_pos = int(n_pos.max()) if b else 0
    if method == "auto":
        method = "compare" if max_pos <= AUC_COMPARE_MAX_POSITIVES else "rank"
    if max_pos == 0:
        return np.zeros(b, dtype=np.float64), n_pos, n_neg

    # Only negatives keep their score. NaN compares false with everything and sorts last, so
    # positives and excluded items drop out of every count below without masks or corrections.
    neg = s.copy()
    neg[exc_rows, exc.indices] = np.nan
    neg[rel_rows, rel.indices] = np.nan
    pos_scores = s[rel_rows, rel.indices]
    if method == "compare":
        correct = _auc_compare(neg, pos_scores, rel, rel_rows, max_pos)
    else:
        correct = _auc_rank(neg, pos_scores, rel)
    return correct, n_pos, n_neg


def _auc_compare(
    neg: np.ndarray, pos_scores: np.ndarray, rel: sp.csr_matrix, rel_rows: np.ndarray, max_pos: int
) -> np.ndarray:
    """Per positive slot, count the negatives below and equal to it; vectorised over rows."""
    b = neg.shape[0]
    # Positives padded with NaN to (b, max_pos): a NaN slot counts no negatives.
    slot = np.arange(rel.nnz) - rel.indptr[:-1][rel_rows]
    pos = np.full((b, max_pos), np.nan, dtype=neg.dtype)
    pos[rel_rows, slot] = pos_scores
    below = np.zeros(b, dtype=np.int64)
    equal = np.zeros(b, dtype=np.int64)
    buf = np.empty(neg.shape, dtype=bool)
    for j in range(max_pos):
        p = pos[:, j : j + 1]
        below += np.count_nonzero(np.less(neg, p, out=buf), axis=1)
        equal += np.count_nonzero(np.equal(neg, p, out=buf), axis=1)
    return below + 0.5 * equal


def _auc_rank(neg: np.ndarray, pos_scores: np.ndarray, rel: sp.csr_matrix) -> np.ndarray:
    """Midranks of the positives among the negatives, from one sort per row.

    In a row's sorted negatives (NaN last, so never counted), ``searchsorted(left)`` is the number
    of negatives below a positive and ``searchsorted(right) - left`` the number tied with it, so
    ``left + (right - left) / 2`` is that positive's count of correct pairs. Summed over the
    positives this is the Mann-Whitney U statistic: the positives' midranks among all candidates
    minus ``n_pos (n_pos + 1) / 2``, computed without ranking the positives against each other.
    """
    b = neg.shape[0]
    ordered = np.sort(neg, axis=1)
    correct = np.zeros(b, dtype=np.float64)
    indptr = rel.indptr
    # One binary search per row: the sort above dominates, the loop costs microseconds a row.
    for u in np.flatnonzero(np.diff(indptr)):
        p = pos_scores[indptr[u] : indptr[u + 1]]
        left = np.searchsorted(ordered[u], p, side="left")
        right = np.searchsorted(ordered[u], p, side="right")
        correct[u] = left.sum() + 0.5 * (right - left).sum()
    return correct


def auc_per_user(
    scores: np.ndarray, relevant: sp.spmatrix | sp.sparray, exclude: sp.spmatrix | sp.sparray
) -> np.ndarray:
    """Per-user exact ROC AUC; see :func:`auc_counts` for the inputs.

    Returns
    -------
    (b,) float64
        ``correct / (n_pos * n_neg)``; NaN where a user has no positives or no negatives.
    """
    correct, n_pos, n_neg = auc_counts(scores, relevant, exclude)
    pairs = n_pos * n_neg
    out = np.full(pairs.shape, np.nan)
    np.divide(correct, pairs, out=out, where=pairs > 0)
    return out


def global_auc(correct: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> float:
    """Pair-weighted (micro) AUC over within-user pairs.

    Defined as ``sum(correct) / sum(n_pos * n_neg)``: every (user, positive, negative) triple
    weighs the same, so users with many positives or negatives weigh more than in the mean of
    :func:`auc_per_user` (the macro AUC, which weighs users equally). Pairs never cross users.
    Concatenate the outputs of :func:`auc_counts` over batches before calling.

    Parameters
    ----------
    correct, n_pos, n_neg : (n_users,) float64
        As returned by :func:`auc_counts`.

    Returns
    -------
    float
        NaN when there are no pairs.
    """
    pairs = float(np.sum(np.asarray(n_pos, dtype=np.float64) * np.asarray(n_neg, dtype=np.float64)))
    if pairs <= 0:
        return float("nan")
    return float(np.sum(np.asarray(correct, dtype=np.float64)) / pairs)


# ------------------------------------------------------------------------------ list-level
def catalog_coverage(ranked: np.ndarray, n_items: int, k: int | None = None) -> float:
    """Share of the catalogue that appears in at least one top-``k`` list.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded.
    n_items : int
        Catalogue size.
    k : int, optional
        Cut-off; the whole list when omitted.

    Returns
    -------
    float
        ``|distinct items in ranked[:, :k]| / n_items``, in [0, 1].
    """
    n_items = _check_n(n_items, "n_items")
    top, _ = _check_ranked(ranked, k, n_items)
    items = top[top >= 0]
    return float(np.unique(items).size / n_items)


def novelty(
    ranked: np.ndarray, item_popularity: np.ndarray, k: int | None = None, *, n_users: int
) -> np.ndarray:
    """Mean self-information of each user's top-``k`` items.

    For item ``i``, ``p_i = item_popularity[i] / n_users`` clipped to ``[1 / n_users, 1]``, and its
    self-information is ``-log2(p_i)`` bits; a user's novelty is the mean over the (non-padding)
    items of the top ``k``. Values lie in ``[0, log2(n_users)]``; an item never interacted with
    gets the maximum.

    Parameters
    ----------
    ranked : (n_users_eval, n) int array
        Item indices, best first, -1 padded.
    item_popularity : (n_items,) int or float
        Train interactions per item, e.g. ``Interactions.item_counts()`` (number of users who
        interacted with the item when the matrix holds one entry per pair).
    k : int, optional
        Cut-off; the whole list when omitted.
    n_users : int
        Number of users with at least one train interaction,
        e.g. ``len(Interactions.active_users())``.

    Returns
    -------
    (n_users_eval,) float64
        NaN for an empty list.
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.ndim != 1:
        raise DataError(f"item_popularity must be 1-D (n_items,), got shape {pop.shape}")
    if not np.isfinite(pop).all() or (pop < 0).any():
        raise DataError("item_popularity must be finite and non-negative")
    n_users = _check_n(n_users, "n_users")
    top, _ = _check_ranked(ranked, k, pop.size)
    p = np.clip(pop / n_users, 1.0 / n_users, 1.0)
    info = -np.log2(p)
    valid = top >= 0
    total = np.where(valid, info[np.where(valid, top, 0)], 0.0).sum(axis=1)
    count = valid.sum(axis=1)
    out = np.full(top.shape[0], np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def intra_list_diversity(
    ranked: np.ndarray, item_vectors: np.ndarray, k: int | None = None
) -> np.ndarray:
    """Mean pairwise cosine distance ``1 - cos`` among each user's top-``k`` items.

    A zero vector has cosine 0 with every item (distance 1), so it raises no warning and no NaN.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded.
    item_vectors : (n_items, d) float
        Item features or factors (dense).
    k : int, optional
        Cut-off; the whole list when omitted.

    Returns
    -------
    (n_users,) float64
        In ``[0, 2]`` (``[0, 1]`` for non-negative vectors); NaN for lists with fewer than 2 items.
    """
    v = np.asarray(item_vectors, dtype=np.float64)
    if v.ndim != 2:
        raise DataError(f"item_vectors must be 2-D (n_items, d), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise DataError("item_vectors contain NaN or infinite values")
    top, _ = _check_ranked(ranked, k, v.shape[0])
    norms = np.linalg.norm(v, axis=1)
    unit = v / np.where(norms > 0, norms, 1.0)[:, None]
    unit_sq = (norms > 0).astype(np.float64)  # |unit_i|^2: 1, or 0 for a zero vector
    valid = top >= 0
    m = valid.sum(axis=1).astype(np.float64)
    # sum_{i<j} cos_ij = (|sum_i u_i|^2 - sum_i |u_i|^2) / 2: one sparse product, no k x k Gram.
    rows = np.repeat(np.arange(top.shape[0]), valid.sum(axis=1))
    select = sp.csr_matrix(
        (np.ones(rows.size), (rows, top[valid])), shape=(top.shape[0], v.shape[0])
    )
    summed = np.asarray(select @ unit)
    sq_sum = np.einsum("ij,ij->i", summed, summed)
    self_sq = np.asarray(select @ unit_sq).ravel()
    pairs = m * (m - 1.0) / 2.0
    out = np.full(top.shape[0], np.nan)
    np.divide((sq_sum - self_sq) / 2.0, pairs, out=out, where=pairs > 0)
    return np.where(pairs > 0, np.clip(1.0 - out, 0.0, 2.0), np.nan)


def gini_index(ranked: np.ndarray, n_items: int, k: int | None = None) -> float:
    """Gini coefficient of how often each catalogue item is recommended in the top ``k``.

    0 when every item is recommended equally often; ``1 - 1/n_items`` when a single item takes
    every slot. Items never recommended count as zero exposure.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded.
    n_items : int
        Catalogue size.
    k : int, optional
        Cut-off; the whole list when omitted.

    Returns
    -------
    float
        ``sum_i (2i - n_items - 1) x_(i) / (n_items * sum x)`` over exposures ``x`` sorted
        ascending (1-based ``i``); NaN when nothing is recommended.
    """
    n_items = _check_n(n_items, "n_items")
    top, _ = _check_ranked(ranked, k, n_items)
    x = np.sort(np.bincount(top[top >= 0], minlength=n_items).astype(np.float64))
    total = x.sum()
    if total == 0:
        return float("nan")
    i = np.arange(1, n_items + 1, dtype=np.float64)
    return float(((2.0 * i - n_items - 1.0) * x).sum() / (n_items * total))


def _check_n(n: int, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"{name} must be a positive integer, got {n!r}")
    return int(n)
