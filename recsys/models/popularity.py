"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.models.base import Recommender


class Popularity(Recommender):
    """Rank items by training popularity.

    Parameters
    ----------
    by : {"users", "weight"}
        Count distinct users (default) or sum interaction weights.
    """

    name = "popularity"
    supports_new_items = True  # a new item has popularity 0; new users get the same list as everyone
    _state_attrs = ("scores_",)

    def __init__(self, by: str = "users") -> None:
        self.by = by

    def _fit(self, interactions, item_features) -> None:
        from recsys.errors import ConfigError

        if self.by == "users":
            self.scores_ = interactions.item_counts().astype(np.float32)
        elif self.by == "weight":
            self.scores_ = np.asarray(interactions.matrix.sum(axis=0), dtype=np.float32).ravel()
        else:
            raise ConfigError(f"Popularity(by=...) must be 'users' or 'weight', got {self.by!r}")

    def _grow_items(self, m: int, new_features) -> None:
        self.scores_ = np.concatenate([self.scores_, np.zeros(m, np.float32)])

    def _score_users(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(users), self.n_items_)).copy()

    def _score_new_users(self, rows: sp.csr_matrix) -> np.ndarray:
        return self._score_users(np.zeros(rows.shape[0], dtype=np.int64), rows)

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.scores_[items]
