"""List-level measures beyond accuracy: catalogue coverage, novelty, intra-list diversity, Gini index.

They read only the recommended lists (and item popularity or vectors), never the held-out items.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.errors import DataError
from recsys.metrics.inputs import check_n, check_ranked


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
    n_items = check_n(n_items, "n_items")
    top, _ = check_ranked(ranked, k, n_items)
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
    n_users = check_n(n_users, "n_users")
    top, _ = check_ranked(ranked, k, pop.size)
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
    top, _ = check_ranked(ranked, k, v.shape[0])
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
    n_items = check_n(n_items, "n_items")
    top, _ = check_ranked(ranked, k, n_items)
    x = np.sort(np.bincount(top[top >= 0], minlength=n_items).astype(np.float64))
    total = x.sum()
    if total == 0:
        return float("nan")
    i = np.arange(1, n_items + 1, dtype=np.float64)
    return float(((2.0 * i - n_items - 1.0) * x).sum() / (n_items * total))
