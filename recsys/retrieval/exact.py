"""Exact retrieval: batched BLAS matmul + partial top-k over every item.

The reference every approximate index is measured against, and the default below
:data:`~recsys.retrieval.EXACT_MAX_ITEMS` items, where one query costs a few milliseconds on one
core and needs no build. The dense ``(queries, items)`` score block is never larger than
:data:`MAX_BLOCK_CELLS` cells: queries are scored in batches that fit.

Excluded items are masked (``-inf``) in the score block before the top-k, instead of the
over-fetch the base class does for approximate indexes: exact, no retry however many items a
user has seen, and the very computation a model's dense ``recommend`` does (matmul, ``-inf`` on
seen items, ``argpartition``, order by score then index), so a model answering through an exact
index returns the lists it returns without one, ties included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.errors import BundleError, ConfigError, DataError
from recsys.retrieval.index import _QUERY_CHUNK, Exclude, VectorIndex, _as_vectors, _exclusions
from recsys.retrieval.transform import normalize_rows
from recsys.topk import top_n

# one dense score block is capped at this many float32 cells (~256 MiB), as in recsys.models.base
MAX_BLOCK_CELLS = 64 * 1024 * 1024


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of the ``k`` largest entries per row, best first, ties by
    position (:func:`recsys.topk.top_n`, the models' own top-n): (b, k) int64 (-1 where the
    value is -inf) and (b, k) float32."""
    return top_n(scores, k)


class ExactIndex(VectorIndex):
    """Brute-force inner-product / cosine search, always exact.

    Parameters
    ----------
    metric : {"ip", "cos"}

    Notes
    -----
    Memory is the vectors themselves, ``n * d * 4`` bytes: a reference to the array given to
    ``build`` (do not modify it afterwards), a normalised copy for cosine. Threads:
    whatever BLAS is allowed (set it with ``threadpoolctl.threadpool_limits``); the index never
    changes thread settings itself.
    """

    kind = "exact"

    def search(self, queries: np.ndarray, k: int, exclude: Exclude = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for each query, best first (see :meth:`VectorIndex.search`).

        Excluded items are masked in the score block (see the module docstring); rows are padded
        with ``-1`` / ``-inf`` where fewer than ``k`` eligible items exist.
        """
        self._check_built()
        q = _as_vectors(queries, self.dim_, "search")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {k!r}")
        k = int(k)
        if self.metric == "cos":
            q = normalize_rows(q)
        v = self._vectors
        n = len(v)
        kk = min(k, n)
        rows, pos = self._excluded(exclude, len(q))
        bounds = np.searchsorted(rows, np.arange(len(q) + 1))  # rows are sorted: one slice per block
        dense_ids = self._dense_ids()
        out_idx = np.full((len(q), k), -1, dtype=np.int64)
        out_val = np.full((len(q), k), -np.inf, dtype=np.float32)
        # the query blocks of a model's dense recommend (1024 users, capped by the cell budget)
        step = max(1, min(_QUERY_CHUNK, MAX_BLOCK_CELLS // n))
        for s in range(0, len(q), step):
            e = min(s + step, len(q))
            scores = q[s:e] @ v.T
            a, b = bounds[s], bounds[e]
            scores[rows[a:b] - s, pos[a:b]] = -np.inf
            part, vals = top_k_rows(scores, kk)
            ids = part if dense_ids else self.ids_[part]
            if not dense_ids:  # ties by id, as the interface promises (positions are not ids here)
                order = np.lexsort((ids, -vals), axis=1)
                ids, vals = np.take_along_axis(ids, order, axis=1), np.take_along_axis(vals, order, axis=1)
            ids = np.where(np.isneginf(vals), -1, ids)
            out_idx[s:e, :kk], out_val[s:e, :kk] = ids, vals
        return out_idx, out_val

    def _excluded(self, exclude: Exclude, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, positions)`` of every excluded item held by the index, sorted by row."""
        if sp.issparse(exclude):
            m = sp.csr_matrix(exclude)
            if m.shape[0] != n_queries:
                raise DataError(f"exclude has {m.shape[0]} rows for {n_queries} queries")
            rows, ids = np.repeat(np.arange(n_queries), np.diff(m.indptr)), m.indices.astype(np.int64)
        else:
            per_row = _exclusions(exclude, n_queries)
            rows = np.repeat(np.arange(n_queries), [len(e) for e in per_row])
            ids = np.concatenate(per_row) if per_row else np.empty(0, np.int64)
        if self._dense_ids():
            keep = ids < len(self.ids_)
            return rows[keep], ids[keep]
        order = np.argsort(self.ids_, kind="stable")
        at = np.searchsorted(self.ids_[order], ids)
        keep = (at < len(order)) & (self.ids_[order[np.minimum(at, len(order) - 1)]] == ids)
        return rows[keep], order[at[keep]]

    def _dense_ids(self) -> bool:
        """Whether the ids are ``0..n-1`` in order (positions are ids); cached per ``ids_`` array."""
        cached = getattr(self, "_dense_cache", None)
        if cached is None or cached[0] is not self.ids_:
            ids = self.ids_
            dense = bool(len(ids) and ids[0] == 0 and ids[-1] == len(ids) - 1 and np.all(np.diff(ids) == 1))
            cached = self._dense_cache = (ids, dense)
        return cached[1]

    def _build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        # like scikit-learn's brute-force neighbours, keep a reference, not a copy (1M x 256 is 1 GiB)
        self._vectors = normalize_rows(vectors) if self.metric == "cos" else vectors

    def _add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        new = normalize_rows(vectors) if self.metric == "cos" else vectors
        self._vectors = np.concatenate([self._vectors, new])

    def _search(self, queries: np.ndarray, k: int, effort: int) -> tuple[np.ndarray, np.ndarray, bool]:
        v = self._vectors
        q = normalize_rows(queries) if self.metric == "cos" else queries
        n = len(v)
        k = min(k, n)
        out_pos = np.empty((len(q), k), dtype=np.int64)
        out_val = np.empty((len(q), k), dtype=np.float32)
        step = max(1, MAX_BLOCK_CELLS // n)
        for s in range(0, len(q), step):
            scores = q[s : s + step] @ v.T
            out_pos[s : s + step], out_val[s : s + step] = top_k_rows(scores, k)
        return self.ids_[out_pos], out_val, True

    def _save(self, directory: Path) -> list[Path]:
        np.save(directory / "vectors.npy", self._vectors, allow_pickle=False)
        return [directory / "vectors.npy"]

    def _load(self, directory: Path, params: dict[str, Any]) -> None:
        v = np.load(directory / "vectors.npy", allow_pickle=False)
        if v.ndim != 2 or v.shape[1] != self.dim_ or v.dtype != np.float32:
            raise BundleError(f"{directory / 'vectors.npy'}: expected (n, {self.dim_}) float32, "
                              f"got {v.shape} {v.dtype}")
        self._vectors = v

    def _size(self) -> int:
        return len(self._vectors)
