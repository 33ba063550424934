"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through the ``implicit`` library."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError
from recsys.models.base import EmbeddingRecommender
from recsys.models.weighting import Weighting


def confidence(matrix: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Hu et al. confidence ``C = 1 + alpha * w`` on the stored entries, float32 CSR.

    ``implicit`` uses the stored value itself as the confidence (its own ``alpha`` only scales
    it), so avrec passes ``1 + alpha * w`` and keeps implicit's ``alpha`` at 1.
    """
    c = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    c.data = (1.0 + alpha * c.data).astype(np.float32)
    return c


def gpu_available() -> bool:
    """Whether the installed ``implicit`` has CUDA support and a GPU is visible."""
    try:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)
    except Exception:  # an import or driver failure means: no GPU path
        return False


class ALS(EmbeddingRecommender):
    """Alternating least squares on implicit feedback.

    Parameters
    ----------
    factors : int
        Latent dimension.
    regularization : float
        L2 penalty on user and item factors.
    alpha : float
        Confidence slope: ``C = 1 + alpha * weight``.
    iterations : int
        ALS sweeps.
    random_state : int
        Seed of the initial factors (fits are deterministic for a seed).
    use_gpu : {"auto", True, False}
        Use implicit's CUDA build when one is installed and a GPU is present.
    num_threads : int
        implicit's solver threads (0 = all cores). BLAS is pinned to one thread during fits,
        as implicit requires; implicit parallelises over users itself.
    weighting : {"none", "bm25", "tfidf"}
        Re-weighting of the interaction matrix before confidences are formed
        (:mod:`recsys.models.weighting`); new users are weighted with the training statistics.
    bm25_k1, bm25_b : float
        BM25 parameters.

    Notes
    -----
    The defaults (BM25, strong regularization, small alpha) were chosen by random search on the
    TikTok validation split; on sparse micro-video logs this regime beats the classic small-lambda
    one by about 0.01 recall@20.
    """

    name = "als"

    def __init__(
        self,
        factors: int = 256,
        regularization: float = 100.0,
        alpha: float = 3.0,
        iterations: int = 10,
        random_state: int = 0,
        use_gpu: str | bool = "auto",
        num_threads: int = 0,
        weighting: str = "bm25",
        bm25_k1: float = 1.2,
        bm25_b: float = 0.5,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.use_gpu = use_gpu
        self.num_threads = num_threads
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b

    # ------------------------------------------------------------------ fitting
    def _validate(self) -> None:
        if self.factors < 1 or self.iterations < 1:
            raise ConfigError("factors and iterations must be >= 1")
        if self.regularization < 0 or self.alpha < 0:
            raise ConfigError("regularization and alpha must be >= 0")

    def _new_implicit(self, gpu: bool):
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # implicit checks the BLAS thread count on construction; build it under the same limit
        with threadpool_limits(1, "blas"):
            return AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,
                iterations=self.iterations,
                random_state=self.random_state,
                use_gpu=gpu,
                num_threads=self.num_threads,
                calculate_training_loss=False,
            )

    def _fit(self, interactions, item_features) -> None:
        from threadpoolctl import threadpool_limits

        self._validate()
        gpu = gpu_available() if self.use_gpu == "auto" else bool(self.use_gpu)
        model = self._new_implicit(gpu)
        self.weighting_ = Weighting(self.weighting, self.bm25_k1, self.bm25_b).fit(interactions.matrix)
        c = self._confidence(interactions.matrix)
        with threadpool_limits(1, "blas"):
            model.fit(c, show_progress=False)
        if gpu:
            model = model.to_cpu()
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._check_finite(self.user_factors_, self.item_factors_)
        self.used_gpu_ = gpu
        self._implicit = model

    def _confidence(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """Weighted rows turned into confidences ``1 + alpha * w'``."""
        return confidence(self.weighting_.transform(rows), self.alpha)

    def _cpu_model(self):
        """An implicit CPU model holding the fitted factors (for fold-in), built once."""
        m = getattr(self, "_implicit", None)
        if m is None or getattr(self, "used_gpu_", False):
            m = self._new_implicit(False)
            m.user_factors = self.user_factors_
            m.item_factors = self.item_factors_
            self._implicit = m
            self.used_gpu_ = False
        return m

    # ------------------------------------------------------------------ scoring
    def fold_in(self, rows: sp.csr_matrix) -> np.ndarray:
        """Factors of users unknown at fit time from their interactions, without refitting.

        Solves each user's least-squares problem against the fixed item factors (implicit's
        ``recalculate_user``), exactly as one ALS half-step would.

        Parameters
        ----------
        rows : CSR (b, n_items)
            Interaction weights of the new users (same weighting as the training log).

        Returns
        -------
        factors : (b, factors) float32
        """
        self._check_fitted()
        from threadpoolctl import threadpool_limits

        rows = sp.csr_matrix(rows, dtype=np.float32)
        b = rows.shape[0]
        with threadpool_limits(1, "blas"):
            f = self._cpu_model().recalculate_user(np.arange(b), self._confidence(rows))
        return np.asarray(f, dtype=np.float32).reshape(b, self.factors)

    # ------------------------------------------------------------------ vectors (EmbeddingRecommender)
    def _user_vectors(self) -> np.ndarray:
        return self.user_factors_

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _new_user_vectors(self, rows: sp.csr_matrix) -> np.ndarray:
        return self.fold_in(rows)
