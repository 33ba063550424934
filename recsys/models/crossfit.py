"""Cross-fitting folds inside the training interactions, for models that learn from labels.

A ranker that combines recommenders must learn from (user, item) pairs the recommenders have not
seen, or it learns to trust them as much as they trust their own training data. Cross-fitting
gives every labelled pair that property while using all of the training data: fold ``f`` holds out
some interactions, the recommenders are refitted on the rest, and the held-out interactions label
their lists. All folds are pooled into one training set for the ranker.

Each fold holds out **one interaction per user**, the way the held-out parts of the evaluation do
(TikTok's val/test hold one item per user; leave-last-out one per user), so fold recommenders see
nearly all of each user's history and are about as strong as the recommenders fitted on all of
it for serving. With timestamps the held-out interaction is the user's latest one not yet held out
(fold 0 takes the latest, fold 1 the one before, ...), so labels come from the end of each user's
history as test interactions do; without timestamps it is drawn at random. A user keeps at least
one training interaction in every fold, so a user with ``n`` interactions labels
``min(folds, n - 1)`` folds.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError


def fold_assignment(interactions: Interactions, folds: int, seed: int = 0) -> np.ndarray:
    """Fold of every stored interaction, -1 for interactions that are never held out.

    Parameters
    ----------
    interactions : Interactions
    folds : int, >= 1
    seed : int
        Seeds the random choice when there are no timestamps.

    Returns
    -------
    fold : (nnz,) int64 aligned to ``interactions.matrix.data`` (CSR order)
    """
    if folds < 1:
        raise ConfigError(f"folds must be >= 1, got {folds}")
    m = interactions.matrix
    counts = np.diff(m.indptr)
    out = np.full(m.nnz, -1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    ts = interactions.timestamps
    # A key per interaction that orders each user's row: latest first (timestamps) or random.
    # Ties in time break at random, so equal timestamps do not favour low item indices.
    noise = rng.random(m.nnz)
    key = noise if ts is None else np.lexsort((noise, -np.asarray(ts, dtype=np.float64)))
    if ts is not None:  # turn the permutation into per-position ranks
        rank = np.empty(m.nnz, dtype=np.float64)
        rank[key] = np.arange(m.nnz)
        key = rank
    rows = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((key, rows))  # by user, then by key
    pos_in_row = np.arange(m.nnz) - m.indptr[rows[order]]
    labelled = pos_in_row < np.minimum(folds, counts[rows[order]] - 1)
    out[order[labelled]] = pos_in_row[labelled]
    return out


def crossfit_folds(interactions: Interactions, folds: int, seed: int = 0) -> Iterator[tuple[Interactions, Interactions]]:
    """``(fold_train, fold_labels)`` for each fold: the recommenders fit on the first, the second
    labels their lists (one interaction per labelled user). Same id maps as ``interactions``.

    Raises
    ------
    DataError
        When no user has two interactions (nothing can be held out).
    """
    fold = fold_assignment(interactions, folds, seed)
    if not (fold >= 0).any():
        raise DataError("cross-fitting needs users with at least 2 training interactions; none has")
    for f in range(folds):
        held = fold == f
        if held.any():
            yield interactions.subset(~held), interactions.subset(held)
