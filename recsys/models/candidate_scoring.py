"""Candidate-only scoring: a component's top-k, its row statistics and its pair scores, without a
dense score row per user.

The hybrid's ranker reads, for each (user, candidate) pair and each component, the component's
score and its z-score within the user's row (mean and standard deviation over every unseen item).
The dense way builds the (users x items) score block of every component to get them. Here:

- **Embedding components** (score = user vector . item vector: ALS, the media bridge, content
  profiles): the row mean and variance over all items follow from two item statistics computed
  once, ``s = sum_j v_j`` (d,) and ``G = sum_j v_j v_j^T`` (d, d): ``sum_j u.v_j = u.s`` and
  ``sum_j (u.v_j)^2 = u^T G u``; the seen items' terms are subtracted from gathered dot products.
  O(d^2) per user instead of O(n_items d) plus an O(n_items) pass.
- **Item-kNN** (score = history row @ sparse similarity): the product is itself sparse; its
  statistics come from its stored entries (every other unseen item scores 0).
- **Top-k** (retrieval) is exact, batched matmul + partial selection, or from a
  :class:`~recsys.retrieval.index.VectorIndex` when one is attached (approximate, large catalogs).
- **Exact retrieval computes the rows anyway.** With no approximate index (an exact one, or none)
  and a batch of at most :data:`ROW_CELLS` cells, the top-k's own matmul row (seen items at
  ``-inf``) is kept, and the pair scores and row statistics are read from it (a gather, a masked
  mean and deviation) instead of being computed a second time by the routes above: one matmul
  per component and request, and a handful of numpy calls instead of dozens (TikTok: the
  per-call overhead was most of a hybrid request). With an approximate index nothing dense is built.

Pair scores are gathered dot products (or sparse lookups). Nothing here sorts a catalog-wide row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.models.base import EmbeddingRecommender, Recommender

# Items per block of exact top-k retrieval, so one dense (users, block) panel stays small.
_ITEM_BLOCK = 65536
#: largest (batch x items) score block an exact-retrieval view keeps (4M float32 cells, 16 MiB)
ROW_CELLS = 4 * 1024 * 1024
#: item matrices up to this many cells also get a C-ordered (d, n_items) copy for the exact rows:
#: OpenBLAS multiplies a few users by it 1.4-2.5x faster than by the transposed view of (n, d)
#: (TikTok, 128-d, 1-8 users), at the price of a second copy (at most 32 MiB each)
TRANSPOSED_CELLS = 8 * 1024 * 1024


@dataclass
class RowStats:
    """Mean and standard deviation (ddof 0) of each user's scores over the unseen items, (b,) each."""

    mean: np.ndarray
    std: np.ndarray


def item_moments(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(s, G)``: the sum (d,) and the Gram matrix (d, d) of item vectors (n, d), float64."""
    v = np.asarray(vectors, dtype=np.float64)
    return v.sum(axis=0), v.T @ v


def seen_pairs(rows: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(batch row, item) of every stored entry of ``rows``, row-major."""
    return np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)), rows.indices.astype(np.int64)


def _stats(total: np.ndarray, squares: np.ndarray, count: np.ndarray) -> RowStats:
    cnt = np.maximum(count, 1).astype(np.float64)
    mean = total / cnt
    var = np.maximum(squares / cnt - mean * mean, 0.0)
    return RowStats(mean.astype(np.float32), np.sqrt(var).astype(np.float32))


def _unseen_stats(s: np.ndarray, r: np.ndarray, c: np.ndarray, count: np.ndarray) -> RowStats:
    """Mean and deviation of each row of ``s`` (b, n) over the entries not in the seen pairs
    ``(r, c)`` (as the dense path's nanmean / nanstd once seen items are masked): two passes over
    ``s`` (sum, then squared deviations, both in float64), the seen entries' terms subtracted."""
    b = s.shape[0]
    cnt = np.maximum(count, 1).astype(np.float64)
    mean = (s.sum(axis=1, dtype=np.float64) - np.bincount(r, weights=s[r, c], minlength=b)) / cnt
    dev = s - mean[:, None]  # float64: a float32 sum of 10^4 squares is off by ~1e-5, enough to swap near-ties
    seen_dev = dev[r, c]
    var = (np.einsum("ij,ij->i", dev, dev) - np.bincount(r, weights=seen_dev * seen_dev, minlength=b)) / cnt
    return RowStats(mean.astype(np.float32), np.sqrt(np.maximum(var, 0.0)).astype(np.float32))


def _top_k_of_rows(s: np.ndarray, k: int) -> np.ndarray:
    """(b, min(k, n)) positions of the ``k`` largest entries of each row of ``s`` (b, n), unordered;
    -1 where the entry is not finite (a masked seen item)."""
    b, n = s.shape
    k = min(k, n)
    part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < n else np.broadcast_to(np.arange(n), (b, n)).copy()
    part[~np.isfinite(np.take_along_axis(s, part, axis=1))] = -1
    return part


def _exact_top_k(u: np.ndarray, v: np.ndarray, k: int, rows: sp.csr_matrix) -> np.ndarray:
    """(b, k) indices of the largest ``u . v_j`` per row over unseen items (exact; -1 pads)."""
    b, n = len(u), len(v)
    k = min(k, n)
    r, c = seen_pairs(rows)
    if n <= _ITEM_BLOCK:  # one panel: no merging of per-block winners
        s = u @ v.T
        s[r, c] = -np.inf
        return _top_k_of_rows(s, k)
    best_idx = np.full((b, 0), -1, dtype=np.int64)
    best_val = np.full((b, 0), -np.inf, dtype=np.float32)
    for start in range(0, n, _ITEM_BLOCK):
        stop = min(start + _ITEM_BLOCK, n)
        s = u @ v[start:stop].T
        inside = (c >= start) & (c < stop)
        s[r[inside], c[inside] - start] = -np.inf
        kk = min(k, stop - start)
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if kk < stop - start else \
            np.broadcast_to(np.arange(stop - start), (b, stop - start))
        best_idx = np.concatenate([best_idx, part + start], axis=1)
        best_val = np.concatenate([best_val, np.take_along_axis(s, part, axis=1)], axis=1)
        if best_idx.shape[1] > k:
            keep = np.argpartition(-best_val, k - 1, axis=1)[:, :k]
            best_idx = np.take_along_axis(best_idx, keep, axis=1)
            best_val = np.take_along_axis(best_val, keep, axis=1)
    best_idx[~np.isfinite(best_val)] = -1
    return best_idx


class EmbeddingSource:
    """Candidate-only view of an :class:`~recsys.models.base.EmbeddingRecommender` for one batch.

    Parameters
    ----------
    model : EmbeddingRecommender, fitted
    users : (b,) int, dense user indices (unknown users: -1)
    rows : CSR (b, n_items), the users' interactions (seen items; unknown users are folded in
        from them and must have at least one)
    moments : (s, G) from :func:`item_moments` of the model's item vectors (cached by the caller)
    index : VectorIndex, optional; approximate top-k over the model's item vectors
    transposed : (d, n_items) float32 C-ordered copy of the item vectors, optional (cached by the
        caller; speeds up the exact rows)
    """

    def __init__(self, model: EmbeddingRecommender, users: np.ndarray, rows: sp.csr_matrix,
                 moments: tuple[np.ndarray, np.ndarray], index=None, transposed: np.ndarray | None = None,
                 seen: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        known = (users >= 0) & (users < model.n_users_)
        d = model._item_vectors().shape[1]
        if known.all():
            u = model._user_vectors()[users].astype(np.float32, copy=False)
        else:
            u = np.empty((len(users), d), dtype=np.float32)
            if known.any():
                u[known] = model._user_vectors()[users[known]]
            u[~known] = model._new_user_vectors(rows[np.flatnonzero(~known)])
        self.model, self.u, self.rows, self.moments, self.index = model, u, rows, moments, index
        self.seen = seen_pairs(rows) if seen is None else seen
        exact = index is None or getattr(index, "kind", None) == "exact"
        #: (b, n_items) float32 score rows, seen items at -inf: exact retrieval's own matmul, kept
        self.scores_ = None
        self._row_stats: RowStats | None = None
        if exact and len(users) * model.n_items_ <= ROW_CELLS:
            s = u @ (model._item_vectors().T if transposed is None else transposed)
            r, c = self.seen
            self._row_stats = _unseen_stats(s, r, c, model.n_items_ - np.diff(rows.indptr))
            s[r, c] = -np.inf
            self.scores_ = s

    def top_k(self, k: int) -> np.ndarray:
        """(b, k) the top-``k`` unseen items per user (-1 pads)."""
        if self.scores_ is not None:
            return _top_k_of_rows(self.scores_, k)
        if self.index is not None:
            return self.index.search(self.u, k, exclude=self.rows)[0]
        return _exact_top_k(self.u, self.model._item_vectors(), k, self.rows)

    def pairs(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """(m,) scores of pairs (batch row ``r``, item ``c``)."""
        if self.scores_ is not None:
            return self.scores_[r, c]
        v = self.model._item_vectors()
        return np.einsum("ij,ij->i", self.u[r], v[c]).astype(np.float32)

    def row_stats(self) -> RowStats:
        if self._row_stats is not None:
            return self._row_stats
        s, g = self.moments
        u = self.u.astype(np.float64)
        total, squares = u @ s, np.einsum("bi,ij,bj->b", u, g, u)
        r, c = self.seen
        seen = np.einsum("ij,ij->i", u[r], self.model._item_vectors()[c].astype(np.float64))
        b = len(u)
        total -= np.bincount(r, weights=seen, minlength=b)
        squares -= np.bincount(r, weights=seen * seen, minlength=b)
        return _stats(total, squares, self.model.n_items_ - np.diff(self.rows.indptr))


class SparseSource:
    """Candidate-only view of a component whose score rows are sparse (item-kNN: history @ S)."""

    def __init__(self, model: Recommender, users: np.ndarray, rows: sp.csr_matrix,
                 seen: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        p = sp.csr_matrix(model._matrix(rows) @ model.similarity_, dtype=np.float32)
        p.sort_indices()
        self.n_items = model.n_items_
        # seen items leave the row (the dense path sets them to -inf and excludes them)
        p.data[np.isin(self._keys(p), _keys_of(*(seen_pairs(rows) if seen is None else seen), self.n_items))] = 0.0
        p.eliminate_zeros()
        self.p, self.rows = p, rows
        self.keys_ = self._keys(p)  # ascending: rows in order, sorted indices within a row

    def _keys(self, p: sp.csr_matrix) -> np.ndarray:
        return _keys_of(np.repeat(np.arange(p.shape[0]), np.diff(p.indptr)), p.indices, self.n_items)

    def top_k(self, k: int) -> np.ndarray:
        """(b, k) the top-``k`` unseen items with a non-zero score per user (-1 pads): items the
        neighbourhoods never reach score 0 and are not retrieved."""
        p = self.p
        out = np.full((p.shape[0], k), -1, dtype=np.int64)
        for i in range(p.shape[0]):
            a, b = p.indptr[i], p.indptr[i + 1]
            if b == a:
                continue
            vals, idx = p.data[a:b], p.indices[a:b]
            kk = min(k, b - a)
            sel = np.argpartition(-vals, kk - 1)[:kk] if kk < b - a else np.arange(b - a)
            out[i, :kk] = idx[sel]
        return out

    def pairs(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """(m,) scores of pairs: a binary search in the row-major stored entries (0 if absent)."""
        keys = _keys_of(r, c, self.n_items)
        pos = np.minimum(np.searchsorted(self.keys_, keys), max(len(self.keys_) - 1, 0))
        hit = (self.keys_[pos] == keys) if len(self.keys_) else np.zeros(len(keys), bool)
        return np.where(hit, self.p.data[pos] if len(self.keys_) else 0.0, 0.0).astype(np.float32)

    def row_stats(self) -> RowStats:
        b = self.p.shape[0]
        r = np.repeat(np.arange(b), np.diff(self.p.indptr))
        d = self.p.data.astype(np.float64)
        return _stats(np.bincount(r, weights=d, minlength=b), np.bincount(r, weights=d * d, minlength=b),
                      self.n_items - np.diff(self.rows.indptr))


def _keys_of(r: np.ndarray, c: np.ndarray, n_items: int) -> np.ndarray:
    """One int64 key per (row, item) pair, ordered row-major."""
    return np.asarray(r, dtype=np.int64) * n_items + np.asarray(c, dtype=np.int64)


def source_for(model: Recommender, users: np.ndarray, rows: sp.csr_matrix, cache: dict, index=None,
               seen: tuple[np.ndarray, np.ndarray] | None = None):
    """The candidate-only view of ``model`` for a batch; ``cache`` keeps each embedding model's item
    moments (and its transposed item matrix, :data:`TRANSPOSED_CELLS`) next to the item-vector
    array they came from, so a refit or a grown catalog (a new array) recomputes them. ``seen``:
    :func:`seen_pairs` of ``rows`` when the caller has them (one batch, several components)."""
    if isinstance(model, EmbeddingRecommender):
        vectors = model._item_vectors()
        hit = cache.get(id(model))
        if hit is None or hit[0] is not vectors:
            vt = np.ascontiguousarray(vectors.T) if vectors.size <= TRANSPOSED_CELLS else None
            hit = cache[id(model)] = (vectors, item_moments(vectors), vt)
        return EmbeddingSource(model, users, rows, hit[1], index, transposed=hit[2], seen=seen)
    if hasattr(model, "similarity_") and hasattr(model, "_matrix"):
        return SparseSource(model, users, rows, seen=seen)
    raise TypeError(f"{type(model).__name__} has no candidate-only scoring")


def union_pairs(parts: list[tuple[np.ndarray, np.ndarray]], rows: sp.csr_matrix, n_items: int,
                seen: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (batch row, item) pairs of ``parts`` minus the seen ones, row-major and sorted by
    item within a row (the order of ``np.nonzero`` on a dense candidate mask). Up to
    :data:`ROW_CELLS` cells that mask is built (a few vectorised writes); above, the pairs' keys
    are sorted and deduplicated (memory in the number of pairs, not users x items)."""
    sr, sc = seen_pairs(rows) if seen is None else seen
    b = rows.shape[0]
    if b * n_items <= ROW_CELLS:
        mask = np.zeros((b, n_items), dtype=bool)
        for r, c in parts:
            mask[r, c] = True
        mask[sr, sc] = False
        return tuple(a.astype(np.int64, copy=False) for a in np.nonzero(mask))
    keys = [r.astype(np.int64) * n_items + c for r, c in parts if len(r)]
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k = np.unique(np.concatenate(keys))
    k = k[~np.isin(k, sr * n_items + sc)]
    return k // n_items, k % n_items


def top_pairs(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(batch row, item) of the valid entries (>= 0) of a (b, k) index block."""
    r, j = np.nonzero(idx >= 0)
    return r, idx[r, j]
