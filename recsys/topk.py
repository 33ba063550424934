"""Top-n per row of a dense score block: one implementation for models, evaluators and exact
retrieval."""

from __future__ import annotations

import numpy as np


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``n`` largest scores per row, best first.

    Parameters
    ----------
    scores : (b, m) float32; ``-inf`` marks ineligible items.
    n : int

    Returns
    -------
    idx : (b, n) int64, -1 where fewer than n finite scores exist
    values : (b, n) float32, -inf at padded positions
    """
    b, m = scores.shape
    k = min(n, m)
    if k < m:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(scores, part, axis=1)
    else:
        part = np.broadcast_to(np.arange(m), (b, m)).copy()
        vals = np.take_along_axis(scores, part, axis=1)
    # stable order: score descending, then item index ascending (deterministic ties)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1)
    idx[~np.isfinite(vals) & (vals < 0)] = -1
    if k < n:
        idx = np.pad(idx, ((0, 0), (0, n - k)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, n - k)), constant_values=-np.inf)
    return idx, vals.astype(np.float32)
