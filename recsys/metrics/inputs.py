"""Validation of the inputs every metric shares, and the hit matrix built from them.

See :mod:`recsys.metrics` for the conventions (``ranked``, ``relevant``, ``k``) checked here.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.errors import DataError


def check_ranked(ranked: np.ndarray, k: int | None, n_items: int | None) -> tuple[np.ndarray, int]:
    """Validate ``ranked`` and ``k``; return the first ``k`` columns and ``k``.

    Parameters
    ----------
    ranked : (n_users, n) int array
        Item indices, best first, -1 padded at the end.
    k : int, optional
        Cut-off, ``1 <= k <= n``; the whole list when None.
    n_items : int, optional
        Catalogue size; indices must be below it.

    Returns
    -------
    top : (n_users, k) int64
    k : int

    Raises
    ------
    DataError
        On a bad shape, dtype or ``k``, indices out of range, padding that is not trailing, or an
        item repeated within the top ``k``.
    """
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


def check_scores_finite_rows(scores: np.ndarray) -> None:
    """Refuse a (b, n_items) score block holding NaN, naming how many rows and the first.

    One reduction on the clean path (``max`` propagates NaN); the rows are found only on failure.

    Raises
    ------
    DataError
    """
    if np.isnan(scores.max(initial=-np.inf)):
        rows = np.flatnonzero(np.isnan(scores).any(axis=1))
        raise DataError(
            f"scores contain NaN in {rows.size} of {scores.shape[0]} rows (first row {int(rows[0])}); "
            "a model must score every item"
        )


def check_sparse(
    matrix: sp.spmatrix | sp.sparray, name: str, n_rows: int | None = None
) -> sp.csr_matrix:
    """Return ``matrix`` as canonical CSR (sorted, no duplicates); values are left untouched.

    Parameters
    ----------
    matrix : (n_users, n_items) scipy sparse
    name : str
        The argument's name, for the error message.
    n_rows : int, optional
        Required number of rows.

    Raises
    ------
    DataError
        When ``matrix`` is not scipy sparse, not 2-D, or has the wrong number of rows.
    """
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


def check_n(n: int, name: str) -> int:
    """``n`` as a positive int; DataError naming ``name`` otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def relevance(
    ranked: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate the inputs of a ranking metric; return ``(hits, n_rel, k)``.

    Returns
    -------
    hits : (n_users, k) bool
        Whether ``ranked[u, j]`` is relevant to user ``u``.
    n_rel : (n_users,) int64
        Relevant items per user.
    k : int
        The cut-off (``n`` when ``k`` was None).
    """
    n_users = np.shape(ranked)[0] if np.ndim(ranked) == 2 else None
    rel = check_sparse(relevant, "relevant", n_users)
    top, k = check_ranked(ranked, k, rel.shape[1])
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


def restrict_columns(rows: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """Copy of CSR ``rows`` keeping only entries whose column is marked in ``keep`` (n_items,) bool:
    the relevant items of one segment (warm or cold items) for any metric here."""
    r = rows.tocoo()
    m = keep[r.col]
    return sp.csr_matrix((r.data[m], (r.row[m], r.col[m])), shape=rows.shape)
