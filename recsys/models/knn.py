"""Neighbourhood baselines: item-kNN and user-kNN with shrunk cosine similarity."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError
from recsys.models.base import Recommender, batch_size_for


def _col_norms(x: sp.csr_matrix) -> np.ndarray:
    return np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel()).astype(np.float32)


def _row_norms(x: sp.csr_matrix) -> np.ndarray:
    return np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel()).astype(np.float32)


def _keep_top_k(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """Sparse copy of ``dense`` (b, m) keeping the ``k`` largest positive entries per row."""
    b, m = dense.shape
    k = min(k, m)
    part = np.argpartition(-dense, k - 1, axis=1)[:, :k] if k < m else np.broadcast_to(np.arange(m), (b, m))
    vals = np.take_along_axis(dense, part, axis=1)
    keep = vals > 0
    rows = np.repeat(np.arange(b), k).reshape(b, k)
    return sp.csr_matrix((vals[keep], (rows[keep], part[keep])), shape=(b, m), dtype=np.float32)


def pad_square(x: sp.csr_matrix, m: int) -> sp.csr_matrix:
    """(n, n) CSR grown to (n + m, n + m) with empty new rows and columns."""
    n = x.shape[0]
    indptr = np.concatenate([x.indptr, np.full(m, x.indptr[-1], dtype=x.indptr.dtype)])
    return sp.csr_matrix((x.data, x.indices, indptr), shape=(n + m, n + m))


def _check(k: int, shrink: float) -> None:
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if shrink < 0:
        raise ConfigError(f"shrink must be >= 0, got {shrink}")


class _Neighbourhood(Recommender):
    """Settings and the binary/weighted view shared by the kNN models."""

    def __init__(self, k: int, shrink: float, binary: bool) -> None:
        self.k = k
        self.shrink = shrink
        self.binary = binary

    def check_settings(self) -> None:
        _check(self.k, self.shrink)

    def _matrix(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        if not self.binary:
            return rows
        out = rows.copy()
        out.data[:] = 1.0
        return out


class ItemKNN(_Neighbourhood):
    """Item-based kNN (Sarwar et al. 2001): score(u, j) = sum of sim(i, j) over the user's items i
    that are among the ``k`` nearest neighbours of the candidate item j.

    sim(i, j) = x_i . x_j / (|x_i| |x_j| + shrink) over item columns of the training matrix.
    Shrinkage damps similarities supported by few users. (The target-item neighbourhood beat the
    user-item neighbourhood by 2x on TikTok validation; defaults k=50, shrink=50 were chosen there.)

    Parameters
    ----------
    k : int
        Neighbours kept per item.
    shrink : float
        Shrinkage term added to the cosine denominator.
    binary : bool
        Use 0/1 interactions instead of weights for similarity and scoring.
    """

    name = "itemknn"
    supports_fold_in = True
    supports_new_items = True
    _state_attrs = ("similarity_", "item_norms_")

    def __init__(self, k: int = 50, shrink: float = 50.0, binary: bool = True) -> None:
        super().__init__(k, shrink, binary)

    def _fit(self, interactions, item_features) -> None:
        _check(self.k, self.shrink)
        x = self._matrix(interactions.matrix)
        xt = x.T.tocsr()
        norms = _col_norms(x)
        n = interactions.n_items
        blocks = []
        # Similarity rows in blocks, so only (block, n_items) is ever dense.
        for start in range(0, n, batch_size_for(n, 1024)):
            stop = min(start + batch_size_for(n, 1024), n)
            co = np.asarray((xt[start:stop] @ x).todense(), dtype=np.float32)
            co /= norms[start:stop, None] * norms[None, :] + self.shrink + 1e-12
            co[np.arange(stop - start), np.arange(start, stop)] = 0.0  # an item is not its own neighbour
            blocks.append(_keep_top_k(co, self.k))
        # row j of the blocks holds j's k neighbours; scores are R @ S^T so that column j sums
        # over the candidate's own neighbourhood
        self.similarity_ = sp.vstack(blocks).T.tocsr()
        self.item_norms_ = norms

    def _grow_items(self, m: int, new_features) -> None:
        self.similarity_ = pad_square(self.similarity_, m)  # a new item has no neighbours yet
        self.item_norms_ = np.concatenate([self.item_norms_, np.zeros(m, np.float32)])

    def _score_users(self, users, rows) -> np.ndarray:
        return np.asarray((self._matrix(rows) @ self.similarity_).todense(), dtype=np.float32)

    def _score_new_users(self, rows) -> np.ndarray:
        scores = self._score_users(None, rows)
        empty = np.diff(rows.indptr) == 0
        if empty.any():  # nothing to go on: popularity
            scores[empty] = self.item_popularity_
        return scores

    def _item_similarities(self, item_idx: int) -> np.ndarray:
        x = self._matrix(self.train_.matrix)
        co = np.asarray((x.T @ x[:, item_idx]).todense()).ravel()
        return co / (self.item_norms_ * self.item_norms_[item_idx] + self.shrink + 1e-12)


class UserKNN(_Neighbourhood):
    """User-based kNN: score(u, j) = sum over the ``k`` most similar users v of sim(u, v) * x_vj.

    Similarities are shrunk cosine over user rows; a new user is compared by their given history.

    Parameters
    ----------
    k : int
        Neighbours per user.
    shrink : float
    binary : bool
    """

    name = "userknn"
    supports_fold_in = True
    supports_new_items = True

    def __init__(self, k: int = 100, shrink: float = 10.0, binary: bool = True) -> None:
        super().__init__(k, shrink, binary)

    def _fit(self, interactions, item_features) -> None:
        _check(self.k, self.shrink)
        self._restore({}, item_features)

    def _restore(self, state, item_features) -> None:
        # everything user-kNN knows is the training matrix itself: nothing else to save
        self.x_ = self._matrix(self.train_.matrix)
        self.xt_ = self.x_.T.tocsr()
        self.user_norms_ = _row_norms(self.x_)

    def _grow_items(self, m: int, new_features) -> None:
        self._restore({}, None)

    def _neighbour_scores(self, rows: sp.csr_matrix, exclude: np.ndarray | None) -> np.ndarray:
        rows = self._matrix(rows)
        sims = np.asarray((rows @ self.xt_).todense(), dtype=np.float32)
        sims /= _row_norms(rows)[:, None] * self.user_norms_[None, :] + self.shrink + 1e-12
        if exclude is not None:  # a known user is not their own neighbour
            sims[np.arange(len(exclude)), exclude] = 0.0
        return np.asarray((_keep_top_k(sims, self.k) @ self.x_).todense(), dtype=np.float32)

    def _score_users(self, users, rows) -> np.ndarray:
        return self._neighbour_scores(rows, users)

    def _score_new_users(self, rows) -> np.ndarray:
        scores = self._neighbour_scores(rows, None)
        empty = np.diff(rows.indptr) == 0
        if empty.any():
            scores[empty] = self.item_popularity_
        return scores
