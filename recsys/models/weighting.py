"""Re-weighting of the interaction matrix before factorisation (BM25, TF-IDF).

The statistics (item idf, mean user length) are learned at fit time and kept, so the rows of a new
user folded in later are weighted exactly like the training rows.

BM25 follows ``implicit.nearest_neighbours.bm25_weight`` applied to the users x items matrix:
``w' = w * (K1 + 1) / (K1 * norm_u + w) * idf_i`` with ``norm_u = (1 - B) + B * len_u / mean_len``
and ``idf_i = log(N_users) - log(1 + n_users_i)``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError

WEIGHTINGS = ("none", "bm25", "tfidf")


class Weighting:
    """A fitted weighting scheme.

    Parameters
    ----------
    kind : {"none", "bm25", "tfidf"}
    k1, b : float
        BM25 saturation and length normalisation.
    """

    def __init__(self, kind: str = "none", k1: float = 1.2, b: float = 0.5) -> None:
        if kind not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {kind!r}")
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigError(f"need bm25_k1 >= 0 and 0 <= bm25_b <= 1, got {k1}, {b}")
        self.kind, self.k1, self.b = kind, k1, b
        self.idf: np.ndarray | None = None
        self.mean_length = 1.0

    def fit(self, matrix: sp.csr_matrix) -> "Weighting":
        n_users = matrix.shape[0]
        df = np.bincount(matrix.indices, minlength=matrix.shape[1])
        if self.kind == "bm25":
            self.idf = (np.log(max(n_users, 1)) - np.log1p(df)).astype(np.float32)
        else:
            self.idf = np.log(max(n_users, 1) / (1.0 + df)).astype(np.float32)
        lengths = np.asarray(matrix.sum(axis=1)).ravel()
        self.mean_length = float(lengths.mean()) if len(lengths) else 1.0
        return self

    def transform(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """Weighted copy of ``rows`` (b, n_items) float32 CSR with the fitted statistics."""
        out = sp.csr_matrix(rows, dtype=np.float32, copy=True)
        if self.kind == "none":
            return out
        r = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
        idf = self.idf[out.indices]
        if self.kind == "tfidf":
            out.data = out.data * idf
        else:
            lengths = np.asarray(out.sum(axis=1)).ravel()
            norm = (1.0 - self.b) + self.b * lengths / max(self.mean_length, 1e-12)
            out.data = out.data * (self.k1 + 1.0) / (self.k1 * norm[r] + out.data) * idf
        # rare idf can be <= 0 for items everyone has; keep confidences non-negative
        np.maximum(out.data, 0.0, out=out.data)
        return out
