"""Per-user ranking accuracy: precision, recall, F1, NDCG, MAP, MRR and hit rate at ``k``.

Each metric is defined once, as a kernel over a precomputed hit matrix whose docstring is the
metric's definition. The public functions (``precision_at_k`` ...) are those kernels behind one
shared front: validate ``(ranked, relevant, k)``, build the hits, apply the kernel. Their
docstrings are the definition plus one shared description of the inputs, outputs and errors, and
:func:`ranking_metrics` builds the hit matrix once for several kernels.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from recsys.errors import DataError
from recsys.metrics.inputs import relevance

#: A metric over a hit matrix: ``(hits (n_users, k) bool, n_rel (n_users,) int64, k) -> (n_users,) float64``.
Kernel = Callable[[np.ndarray, np.ndarray, int], np.ndarray]

# The part of every per-user metric's docstring that does not depend on the metric.
_SHARED_DOC = """\
Parameters
----------
ranked : (n_users, n) int array
    Item indices, best first, -1 padded at the end.
relevant : (n_users, n_items) scipy sparse
    Stored entries are the held-out relevant items (values ignored).
{k_doc}

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
_K_REQUIRED = "k : int\n    Cut-off, ``1 <= k <= n``."
_K_OPTIONAL = "k : int, optional\n    Cut-off, ``1 <= k <= n``; the whole list when omitted."


def _with_nan(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    out[n_rel == 0] = np.nan
    return out


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


# ------------------------------------------------------------------------------------- kernels
def _precision(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Precision@k: relevant items among the top ``k``, divided by ``k``.

    The denominator is ``k`` even when a user's list is shorter (the standard definition: a
    recommender that returns fewer items is not rewarded for it).
    """
    return _with_nan(hits.sum(axis=1) / k, n_rel)


def _recall(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Recall@k: relevant items among the top ``k``, divided by the user's number of relevant items.

    Not capped: a user with more than ``k`` relevant items cannot reach 1.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _with_nan(hits.sum(axis=1) / n_rel, n_rel)


def _f1(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """F1@k: harmonic mean of precision@k and recall@k, 0 when both are 0."""
    p = _precision(hits, n_rel, k)
    r = _recall(hits, n_rel, k)
    denom = p + r
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(denom > 0, 2.0 * p * r / np.where(denom > 0, denom, 1.0), 0.0)
    return _with_nan(f, n_rel)


def _ndcg(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k with binary relevance.

    ``DCG = sum_j hit_j / log2(j + 2)`` over 0-based positions ``j < k``; the ideal DCG puts
    ``min(n_rel, k)`` hits at the top.
    """
    disc = _discounts(k)
    dcg = hits @ disc
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return _with_nan(dcg / ideal, n_rel)


def _map(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Average precision truncated at ``k`` (MAP@k once averaged over users).

    ``AP@k = sum_j precision@(j+1) * hit_j / min(n_rel, k)``, so a list whose top ``k`` is all
    relevant scores 1 even when the user has more than ``k`` relevant items.
    """
    prec = np.cumsum(hits, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    ap = (prec * hits).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _with_nan(ap / np.minimum(n_rel, k), n_rel)


def _mrr(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first relevant item (1-based), 0 if none is in the top ``k``.

    ``k`` defaults to the whole list. The mean over users is the mean reciprocal rank.
    """
    any_hit = hits.any(axis=1)
    first = np.argmax(hits, axis=1)  # index of the first True; 0 when there is none
    return _with_nan(np.where(any_hit, 1.0 / (first + 1.0), 0.0), n_rel)


def _hit_rate(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """HitRate@k: 1 if any relevant item is in the top ``k``, else 0."""
    return _with_nan(hits.any(axis=1).astype(np.float64), n_rel)


# ----------------------------------------------------------------------------- public front
def _per_user_metric(name: str, kernel: Kernel, *, k_optional: bool = False) -> Callable[..., np.ndarray]:
    """The public form of ``kernel``: ``name(ranked, relevant, k) -> (n_users,) float64``.

    The function is given ``name`` and this module as its identity, so it pickles by reference
    (Spark ships it to executors) and ``help`` shows the kernel's definition plus the shared
    sections.
    """
    if k_optional:
        def metric(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int | None = None) -> np.ndarray:
            return kernel(*relevance(ranked, relevant, k))
    else:
        def metric(ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
            return kernel(*relevance(ranked, relevant, k))
    metric.__name__ = metric.__qualname__ = name
    metric.__module__ = __name__
    shared = _SHARED_DOC.format(k_doc=_K_OPTIONAL if k_optional else _K_REQUIRED)
    metric.__doc__ = f"{inspect.cleandoc(kernel.__doc__ or '')}\n\n{shared}"
    return metric


precision_at_k = _per_user_metric("precision_at_k", _precision)
recall_at_k = _per_user_metric("recall_at_k", _recall)
f1_at_k = _per_user_metric("f1_at_k", _f1)
ndcg_at_k = _per_user_metric("ndcg_at_k", _ndcg)
map_at_k = _per_user_metric("map_at_k", _map)
mrr = _per_user_metric("mrr", _mrr, k_optional=True)
hit_rate_at_k = _per_user_metric("hit_rate_at_k", _hit_rate)

# Kernels by metric name, so ranking_metrics builds the hit matrix once for all of them.
_FROM_HITS: dict[str, Kernel] = {
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "ndcg": _ndcg,
    "map": _map,
    "mrr": _mrr,
    "hit_rate": _hit_rate,
}

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
    hits, _, _ = relevance(ranked, relevant, k)
    return hits


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
    hits, n_rel, k = relevance(ranked, relevant, k)
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
