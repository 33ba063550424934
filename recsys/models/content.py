"""Content-based recommender: users are profiles in the item-embedding space.

A user's profile is the confidence- and recency-weighted mean of the L2-normalised vectors of the
items they interacted with; items are scored by cosine similarity to it. Items without training
interactions (cold) are scored exactly like warm ones, from their media alone.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError, DataError
from recsys.models.base import EmbeddingRecommender


def l2_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def media_mean(x: np.ndarray, has_media: np.ndarray) -> np.ndarray:
    """(d,) float32 mean of the rows that have media (zeros when none do)."""
    has_media = np.asarray(has_media, dtype=bool)
    if not has_media.any():
        return np.zeros(np.shape(x)[1], np.float32)
    return np.asarray(x, dtype=np.float32)[has_media].mean(axis=0).astype(np.float32)


def unit_rows(x: np.ndarray, has_media: np.ndarray, center: np.ndarray) -> np.ndarray:
    """(n, d) float32: rows minus ``center``, zero rows where there is no media, L2-normalised."""
    x = np.asarray(x, dtype=np.float32) - center
    x[~np.asarray(has_media, dtype=bool)] = 0.0  # no media: no direction, cosine 0 with everyone
    return l2_rows(x)


class Content(EmbeddingRecommender):
    """Cosine similarity between a user profile and item content vectors.

    Parameters
    ----------
    block : str
        ``"fused"`` (default) or a feature block name (``"audio"``, ``"video_cnn"``, ...).
    half_life_days : float or None
        Recency weighting of a known user's interactions: weight x 0.5 ** (age / half_life), age
        measured from the user's latest interaction. None disables it.
    use_weights : bool
        Weight items by their interaction confidence (else 1 each).
    center : bool
        Subtract the mean item vector before normalising, so cosine measures what distinguishes
        items rather than what all media share.
    """

    name = "content"
    _state_attrs = ("item_vectors_", "user_profiles_", "has_media_", "center_")
    uses_features = True
    supports_fold_in = True
    supports_new_items = True

    def __init__(self, block: str = "fused", half_life_days: float | None = 30.0, use_weights: bool = True,
                 center: bool = True) -> None:
        self.block = block
        self.half_life_days = half_life_days
        self.use_weights = use_weights
        self.center = center

    def check_settings(self) -> None:
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ConfigError(f"half_life_days must be > 0 or None, got {self.half_life_days}")

    def _fit(self, interactions, item_features) -> None:
        if item_features.n_items != interactions.n_items or not np.array_equal(
            np.asarray(item_features.item_ids, dtype=object), np.asarray(interactions.item_ids, dtype=object)
        ):
            raise DataError("item features are not aligned to the interactions' item map; use ItemFeatures.align")
        x = np.asarray(item_features.matrix(self.block), dtype=np.float32)
        self.has_media_ = item_features.mask_of(self.block).copy()
        self.center_ = media_mean(x, self.has_media_) if self.center else np.zeros(x.shape[1], np.float32)
        self.item_vectors_ = unit_rows(x, self.has_media_, self.center_)
        self.user_profiles_ = self._profiles(self._profile_weights(interactions))

    def _grow_items(self, m: int, new_features) -> None:
        from recsys.models.base import pad_rows

        if new_features is None:
            x, has = np.zeros((m, self.item_vectors_.shape[1]), np.float32), np.zeros(m, bool)
        else:
            x, has = new_features.matrix(self.block), new_features.mask_of(self.block)
        self.item_vectors_ = pad_rows(self.item_vectors_, m, unit_rows(x, has, self.center_))
        self.has_media_ = np.concatenate([self.has_media_, has])

    def _profile_weights(self, interactions) -> sp.csr_matrix:
        w = interactions.matrix.copy()
        if not self.use_weights:
            w.data[:] = 1.0
        if self.half_life_days is not None and interactions.timestamps is not None:
            rows = np.repeat(np.arange(w.shape[0]), np.diff(w.indptr))
            latest = np.full(w.shape[0], -np.inf)
            np.maximum.at(latest, rows, interactions.timestamps)
            age_days = (latest[rows] - interactions.timestamps) / 86400.0
            w.data = (w.data * 0.5 ** (age_days / self.half_life_days)).astype(np.float32)
        return w

    def _profiles(self, weights: sp.csr_matrix) -> np.ndarray:
        return l2_rows(np.asarray(weights @ self.item_vectors_))

    def profile(self, rows: sp.csr_matrix) -> np.ndarray:
        """Profiles (b, d) of users given only their interaction rows (no refit)."""
        self._check_fitted()
        w = sp.csr_matrix(rows, dtype=np.float32, copy=True)
        if not self.use_weights:
            w.data[:] = 1.0
        return self._profiles(w)

    def knows_item(self, item_idx: int) -> bool:
        """Content knows every item that has media, interactions or not."""
        self._check_fitted()
        return 0 <= item_idx < self.n_items_ and bool(self.has_media_[item_idx])

    # ------------------------------------------------------------------ vectors (EmbeddingRecommender)
    def _user_vectors(self) -> np.ndarray:
        return self.user_profiles_

    def _item_vectors(self) -> np.ndarray:
        return self.item_vectors_

    def _new_user_vectors(self, rows: sp.csr_matrix) -> np.ndarray:
        return self.profile(rows)
