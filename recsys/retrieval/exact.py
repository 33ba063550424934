"""Exact retrieval: batched BLAS matmul + partial top-k over every item.

The reference every approximate index is measured against, and the default below
:data:`~recsys.retrieval.EXACT_MAX_ITEMS` items, where one query costs a few milliseconds on one
core and needs no build. The dense ``(queries, items)`` score block is never larger than
:data:`MAX_BLOCK_CELLS` cells: queries are scored in batches that fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import BundleError
from recsys.retrieval.index import VectorIndex
from recsys.retrieval.transform import normalize_rows

# one dense score block is capped at this many float32 cells (~256 MiB), as in recsys.models.base
MAX_BLOCK_CELLS = 64 * 1024 * 1024


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of the ``k`` largest entries per row, best first.

    Parameters
    ----------
    scores : (b, m) float32
    k : int, 1 <= k <= m

    Returns
    -------
    pos : (b, k) int64
    values : (b, k) float32; ties ordered by position, ascending
    """
    b, m = scores.shape
    if k < m:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(m), (b, m))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64), np.take_along_axis(vals, order, axis=1)


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
