"""Are CF explanations faithful? A removal test with a paired confidence interval.

For each user with enough history: fold the user in (ALS, against fixed item factors) and take
the top recommended item. Remove (a) the history item :meth:`ALS.contributions` credits most for
that item, (b) a random *other* history item; fold the user in again each time and measure how
far the item falls (its new rank among the items outside the original history; it was rank 0).
A faithful explanation makes (a) hurt more than (b). The per-user difference of the two drops is
averaged with a 95% t-interval (:func:`paired_interval`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class RemovalResult:
    """Rank drops per tested user (rank 0 = still the top item).

    Attributes
    ----------
    users : (k,) int
    drop_top : (k,) int      after removing the top-attributed history item
    drop_random : (k,) int   after removing a random other history item
    """

    users: np.ndarray
    drop_top: np.ndarray
    drop_random: np.ndarray

    def summary(self) -> dict[str, float]:
        mean, lo, hi = paired_interval(self.drop_top - self.drop_random)
        return {"users": int(len(self.users)), "mean_drop_top": float(self.drop_top.mean()),
                "mean_drop_random": float(self.drop_random.mean()), "mean_difference": mean,
                "ci95_low": lo, "ci95_high": hi,
                "share_top_hurts_more": float(np.mean(self.drop_top > self.drop_random))}


def paired_interval(diff: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its two-sided t-interval: ``(mean, low, high)``."""
    from scipy.stats import t

    d = np.asarray(diff, dtype=np.float64)
    if len(d) < 2:
        raise ValueError("a paired interval needs at least 2 pairs")
    half = t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def _without(row: sp.csr_matrix, j: int) -> sp.csr_matrix:
    keep = row.indices != j
    return sp.csr_matrix((row.data[keep], (np.zeros(keep.sum(), int), row.indices[keep])), shape=row.shape)


def removal_test(als, matrix: sp.csr_matrix, users: np.ndarray, seed: int = 0, min_history: int = 3) -> RemovalResult:
    """Run the removal test of the module docstring.

    Parameters
    ----------
    als : recsys.models.als.ALS
        Fitted.
    matrix : CSR (n_users, n_items)
        Histories (interaction weights, as the model was trained on).
    users : (k,) int
        Users to test; those with fewer than ``min_history`` items are skipped.
    seed : int
        Seeds the random removals.
    """
    rng = np.random.default_rng(seed)
    y = als.item_factors_
    kept, drops_top, drops_rand = [], [], []
    for u in np.asarray(users, dtype=np.int64):
        row = sp.csr_matrix(matrix[u], dtype=np.float32)
        hist = row.indices
        if len(hist) < min_history:
            continue
        scores = als.fold_in(row)[0] @ y.T
        scores[hist] = -np.inf
        target = int(np.argmax(scores))
        _, terms = als.contributions(row, [target], top=1)
        top = terms[0][0][0]
        other = int(rng.choice(hist[hist != top]))
        rows = sp.vstack([_without(row, top), _without(row, other)]).tocsr()
        s2 = als.fold_in(rows) @ y.T
        s2[:, hist] = -np.inf  # the candidates stay those of the full history
        ranks = (s2 > s2[:, [target]]).sum(axis=1)
        kept.append(u)
        drops_top.append(int(ranks[0]))
        drops_rand.append(int(ranks[1]))
    return RemovalResult(np.asarray(kept), np.asarray(drops_top), np.asarray(drops_rand))
