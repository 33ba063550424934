"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through the ``implicit`` library."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError
from recsys.models.base import EmbeddingRecommender
from recsys.models.weighting import Weighting

#: ``regularization="auto"``: this share of the scale-free penalty (see :func:`auto_settings`).
#: Chosen on validation parts (val recall@20, alpha 17.85, BM25 b 0.25): TikTok is best at
#: 0.03-0.06 and collapses from about 0.075 (0.0937 at 0.073, 0.0734 at 0.085); the demo is flat
#: over 0.04-0.08; 100-item planted catalogs are best at 0.05-0.10 and collapse from about 0.19.
#: 0.045 sits inside all three with the widest margin to TikTok's collapse.
AUTO_PENALTY_SHARE = 0.045
#: ``factors="auto"`` stays within these bounds (powers of two)
AUTO_FACTORS_RANGE = (16, 128)


def confidence(matrix: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Hu et al. confidence ``C = 1 + alpha * w`` on the stored entries, float32 CSR.

    ``implicit`` uses the stored value itself as the confidence (its own ``alpha`` only scales
    it), so avrec passes ``1 + alpha * w`` and keeps implicit's ``alpha`` at 1.
    """
    c = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    c.data = (1.0 + alpha * c.data).astype(np.float32)
    return c


def auto_settings(matrix: sp.csr_matrix, alpha: float, weighted: sp.csr_matrix | None = None) -> dict:
    """The ``"auto"`` latent size and penalty for a (users x items) training matrix.

    **Penalty.** implicit's ALS uses one ``lambda`` for every user's and every item's
    least-squares problem. A user's problem weighs every item (confidence 1 on unobserved cells,
    ``1 + alpha * w'`` on observed ones), so its total confidence is ``W_user = n_items + M / n_users``
    with ``M = alpha * sum(w')`` the confidence mass above the baseline; an item's is
    ``W_item = n_users + M / n_items`` (counts of users and items that have interactions). The
    penalty that means the same at any size is relative to both; rescaling the user factors by ``t``
    and the item factors by ``1/t`` moves the two ratios in opposite directions, so the invariant is
    their geometric mean:

        lambda = AUTO_PENALTY_SHARE * sqrt(W_user * W_item)

    A fixed lambda does not transfer: 100 collapses a 100-item catalog to popularity (only the
    popularity direction survives such a penalty) while TikTok takes 250-500 (val recall@20 0.1075
    at 252, 0.1114 at 500; the rule gives it 357).

    **Latent size.** ``sqrt(min(n_users, n_items))`` rounded up to a power of two, within
    :data:`AUTO_FACTORS_RANGE`: directions beyond that are not pinned down by the log (at the
    auto penalty, 16, 64 and 256 factors score within 0.005 val recall@20 of each other on the demo
    and on a 100-item catalog); TikTok gets 128, its tuned size.

    Parameters
    ----------
    matrix : CSR (n_users, n_items)
        Training interactions (raw weights).
    alpha : float
        Confidence slope.
    weighted : CSR (n_users, n_items), optional
        ``matrix`` after the model's weighting (BM25 ...); default ``matrix`` itself.

    Returns
    -------
    dict with ``factors`` (int), ``regularization`` (float) and the statistics behind them
    (``n_users``, ``n_items``: with interactions; ``nnz``, ``density``, ``confidence_per_user``,
    ``confidence_per_item``).
    """
    w = matrix if weighted is None else weighted
    n_users = max(int(np.count_nonzero(np.diff(matrix.indptr))), 1)
    n_items = max(int(np.count_nonzero(np.bincount(matrix.indices, minlength=matrix.shape[1]))), 1)
    mass = float(alpha) * float(np.asarray(w.data, dtype=np.float64).sum())
    per_user, per_item = n_items + mass / n_users, n_users + mass / n_items
    lo, hi = AUTO_FACTORS_RANGE
    factors = int(np.clip(2 ** int(np.ceil(np.log2(np.sqrt(min(n_users, n_items))))), lo, hi))
    return {
        "factors": factors,
        "regularization": round(AUTO_PENALTY_SHARE * float(np.sqrt(per_user * per_item)), 4),
        "n_users": n_users, "n_items": n_items, "nnz": int(matrix.nnz),
        "density": round(matrix.nnz / (n_users * n_items), 6),
        "confidence_per_user": round(per_user, 2), "confidence_per_item": round(per_item, 2),
    }


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
    factors : int or "auto"
        Latent dimension; ``"auto"`` (default) follows the log's size (:func:`auto_settings`).
    regularization : float or "auto"
        L2 penalty on user and item factors; ``"auto"`` (default) scales it with the confidence
        each user's and item's least-squares problem carries (:func:`auto_settings`).
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

    Attributes
    ----------
    factors_, regularization_ : int, float
        The values used (``"auto"`` resolved on the training matrix at fit).
    resolved_params_ : dict
        ``factors_``, ``regularization_`` and, for ``"auto"``, the statistics behind them
        (``auto_rule``); evaluation results record it.

    Notes
    -----
    ``alpha``, ``iterations`` and ``bm25_b`` are the values ``--tune als --trials 24`` chose on the
    TikTok validation split; with the automatic penalty they also hold on the demo catalog and on a
    100-item planted catalog (``bench/bench_small_catalog.py``), where a fixed penalty of 100
    collapsed ALS to popularity.
    """

    name = "als"
    supports_fold_in = True
    supports_new_items = True
    _state_attrs = ("user_factors_", "item_factors_")

    def __init__(
        self,
        factors: int | Literal["auto"] = "auto",
        regularization: float | Literal["auto"] = "auto",
        alpha: float = 17.85,
        iterations: int = 15,
        random_state: int = 0,
        use_gpu: str | bool = "auto",
        num_threads: int = 0,
        weighting: str = "bm25",
        bm25_k1: float = 1.2,
        bm25_b: float = 0.25,
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
    def check_settings(self) -> None:
        for name in ("factors", "regularization"):
            v = getattr(self, name)
            if isinstance(v, str) and v != "auto" or isinstance(v, bool):
                raise ConfigError(f"als {name} must be a number or 'auto', got {v!r}")
        if (self.factors != "auto" and self.factors < 1) or self.iterations < 1:
            raise ConfigError("factors and iterations must be >= 1")
        if (self.regularization != "auto" and self.regularization < 0) or self.alpha < 0:
            raise ConfigError("regularization and alpha must be >= 0")

    def _resolve(self, matrix: sp.csr_matrix) -> None:
        """Set ``factors_``, ``regularization_`` and ``resolved_params_`` (``"auto"`` from ``matrix``,
        which ``weighting_`` was fitted on)."""
        auto = None
        if "auto" in (self.factors, self.regularization):
            auto = auto_settings(matrix, self.alpha, self.weighting_.transform(matrix))
        self.factors_ = int(auto["factors"] if self.factors == "auto" else self.factors)
        self.regularization_ = float(auto["regularization"] if self.regularization == "auto" else self.regularization)
        self.resolved_params_ = {"factors_": self.factors_, "regularization_": self.regularization_}
        if auto is not None:
            self.resolved_params_["auto_rule"] = {k: v for k, v in auto.items()
                                                  if k not in ("factors", "regularization")}

    def _new_implicit(self, gpu: bool):
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # implicit checks the BLAS thread count on construction; build it under the same limit
        with threadpool_limits(1, "blas"):
            return AlternatingLeastSquares(
                factors=self.factors_,
                regularization=self.regularization_,
                alpha=1.0,
                iterations=self.iterations,
                random_state=self.random_state,
                use_gpu=gpu,
                num_threads=self.num_threads,
                calculate_training_loss=False,
            )

    def _fit(self, interactions, item_features) -> None:
        from threadpoolctl import threadpool_limits

        self.check_settings()
        gpu = gpu_available() if self.use_gpu == "auto" else bool(self.use_gpu)
        self.weighting_ = Weighting(self.weighting, self.bm25_k1, self.bm25_b).fit(interactions.matrix)
        self._resolve(interactions.matrix)
        model = self._new_implicit(gpu)
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

    @classmethod
    def from_factors(cls, user_factors: np.ndarray, item_factors: np.ndarray, interactions, **params) -> "ALS":
        """An ALS whose factors were learned elsewhere (Spark MLlib, a bundle), ready to score.

        Parameters
        ----------
        user_factors : (n_users, f) float
            Row ``u`` belongs to ``interactions.user_ids[u]``.
        item_factors : (n_items, f) float
            Row ``i`` belongs to ``interactions.item_ids[i]``; zero rows for items without factors.
        interactions : Interactions
            The training interactions (seen-item filtering, fold-in statistics, id maps).
        **params
            Constructor settings (``regularization``, ``alpha``, ``weighting`` ... used by fold-in).

        Returns
        -------
        ALS
            Fitted: ``recommend``, ``scores``, ``fold_in`` and ``similar_items`` work as after ``fit``.
        """
        from recsys.data.interactions import Interactions
        from recsys.errors import DataError

        uf = np.ascontiguousarray(user_factors, dtype=np.float32)
        itf = np.ascontiguousarray(item_factors, dtype=np.float32)
        if not isinstance(interactions, Interactions):
            raise DataError(f"from_factors expects Interactions, got {type(interactions).__name__}")
        if uf.ndim != 2 or itf.ndim != 2 or uf.shape[1] != itf.shape[1]:
            raise DataError(f"factor shapes {uf.shape} and {itf.shape} do not share a latent dimension")
        if (uf.shape[0], itf.shape[0]) != interactions.shape:
            raise DataError(f"factors are {uf.shape[0]} users x {itf.shape[0]} items but the interactions are "
                            f"{interactions.shape[0]} x {interactions.shape[1]}")
        params.setdefault("factors", uf.shape[1])
        model = cls(**params)
        model.check_settings()
        model.train_ = interactions
        model.n_users_, model.n_items_ = interactions.shape
        model.item_popularity_ = interactions.item_counts().astype(np.float32)
        model.weighting_ = Weighting(model.weighting, model.bm25_k1, model.bm25_b).fit(interactions.matrix)
        model._resolve(interactions.matrix)
        model.factors_ = uf.shape[1]  # the factors given decide the latent size
        model.resolved_params_["factors_"] = model.factors_
        model.user_factors_, model.item_factors_ = uf, itf
        model._check_finite(uf, itf)
        model.used_gpu_ = False
        model._implicit = None
        return model

    def _restore(self, state, item_features) -> None:
        # the weighting statistics and the "auto" settings are deterministic functions of the
        # training matrix; the saved factors decide the latent size
        self.weighting_ = Weighting(self.weighting, self.bm25_k1, self.bm25_b).fit(self.train_.matrix)
        self._resolve(self.train_.matrix)
        self.factors_ = int(np.shape(self.user_factors_)[1])
        self.resolved_params_["factors_"] = self.factors_
        self.used_gpu_ = False
        self._implicit = None

    def _grow_items(self, m: int, new_features) -> None:
        from recsys.models.base import pad_rows

        self.item_factors_ = pad_rows(self.item_factors_, m)  # no interactions, no factors
        self._restore({}, None)

    # ------------------------------------------------------------------ incremental updates
    def partial_fit(self, interactions, users: np.ndarray | None = None, items: np.ndarray | None = None,
                    cg_steps: int = 3) -> "ALS":
        """Fold new interactions into the fitted factors without a full refit.

        One ALS half-step each way, restricted to what the new interactions touch: first the
        ``items`` are re-solved against the fitted user factors, then the ``users`` against the
        updated item factors; every other row keeps its factors. Items go first because a user's
        factors rest on their whole history, so one new interaction says far more about a sparse
        item than about the user: the item is placed by the tastes of the users who took it up.
        Solving the users first would pull them towards the items' *old* factors, which the item
        step then reads back (on TikTok, fit on train and updated with val: test recall@20 0.1235
        users-first against 0.1387 items-first; a refit on train+val reaches 0.1380).

        Rows with fitted factors are solved by implicit's conjugate gradient (the fit's own solver,
        ``cg_steps`` steps) started from those factors; rows without (new users and items, items
        that were cold) by an exact Cholesky solve, as implicit's ``recalculate_user`` does. New or
        cold items that new users took up are solved once more after the users step, against the
        factors those users now have (an item only new users took would otherwise stay at zero).

        Parameters
        ----------
        interactions : Interactions
            The fitted interactions plus the new ones: its id maps begin with the fitted maps (same
            ids, same order) and may append new users and items; its entries include the fitted
            ones (a repeated pair may have a larger weight). Becomes ``train_``; the weighting
            statistics (BM25 idf, mean user length) are recomputed from it, as a load would.
        users : (a,) int, optional
            Users to re-solve; default: every user whose row differs from the fitted data
            (:func:`recsys.models.incremental.changes`).
        items : (b,) int, optional
            Items to re-solve; default: every item whose column differs.
        cg_steps : int
            Conjugate-gradient steps per row with fitted factors.

        Returns
        -------
        self
        """
        from threadpoolctl import threadpool_limits
        from implicit.cpu import _als

        from recsys.models.base import pad_rows
        from recsys.models.incremental import changes, check_extends

        self._check_fitted()
        check_extends(self.train_, interactions)
        if users is None or items is None:
            changed_users, changed_items = changes(self.train_, interactions)
            users = changed_users if users is None else users
            items = changed_items if items is None else items
        users = np.unique(np.asarray(users, dtype=np.int64))
        items = np.unique(np.asarray(items, dtype=np.int64))
        n_users, n_items = interactions.shape
        # new rows start without factors (zero), exactly like items added by add_items
        self.user_factors_ = pad_rows(self.user_factors_, n_users - self.user_factors_.shape[0])
        self.item_factors_ = pad_rows(self.item_factors_, n_items - self.item_factors_.shape[0])
        self.train_ = interactions
        self.n_users_, self.n_items_ = n_users, n_items
        self.item_popularity_ = interactions.item_counts().astype(np.float32)
        self.weighting_ = Weighting(self.weighting, self.bm25_k1, self.bm25_b).fit(interactions.matrix)
        self._implicit = None  # its factors and cached Gramians are stale now
        self.used_gpu_ = False
        if len(users) == 0 and len(items) == 0:
            return self
        conf = self._confidence(interactions.matrix)

        def fresh(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return ~np.any(x[rows] != 0, axis=1)  # no factors to start from

        def solve(rows: np.ndarray, c: sp.csr_matrix, x: np.ndarray, y: np.ndarray) -> None:
            """Re-solve ``x[rows]`` in place against the fixed ``y`` (``c``: confidence rows)."""
            new = fresh(x, rows)
            for sel, exact in ((rows[~new], False), (rows[new], True)):
                if not len(sel):
                    continue
                sub = np.ascontiguousarray(x[sel])
                if exact:
                    _als.least_squares(c[sel], sub, y, float(self.regularization), num_threads=self.num_threads)
                else:
                    _als.least_squares_cg(c[sel], sub, y, float(self.regularization), num_threads=self.num_threads,
                                          cg_steps=int(cg_steps))
                x[sel] = sub

        new_users = users[fresh(self.user_factors_, users)]
        new_items = items[fresh(self.item_factors_, items)]
        item_rows = conf.T.tocsr()
        with threadpool_limits(1, "blas"):
            solve(items, item_rows, self.item_factors_, self.user_factors_)
            solve(users, conf, self.user_factors_, self.item_factors_)
            # new (or cold) items taken up by new users were placed while those users had no
            # factors (an item only new users took stays at zero): solve them again now they have
            again = new_items[np.isin(new_items, conf[new_users].indices)] if len(new_users) else new_items[:0]
            if len(again):
                self.item_factors_[again] = 0.0
                solve(again, item_rows, self.item_factors_, self.user_factors_)
        self._check_finite(self.user_factors_, self.item_factors_)
        return self

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
        return np.asarray(f, dtype=np.float32).reshape(b, self.factors_)

    def contributions(self, row: sp.csr_matrix, item_idx: np.ndarray, top: int = 3) -> tuple[np.ndarray, list]:
        """Which history items make a folded-in user's score of each item (Hu et al. 2008, sec. 5).

        The fold-in score of item i is exactly ``sum_j c_j * y_i^T W y_j`` over the history items j
        (``W`` the user's regularised weighted Gramian inverse); implicit's ``explain`` returns those
        terms. The Cholesky factor of ``W`` is computed once per call.

        Parameters
        ----------
        row : CSR (1, n_items)
            The user's interaction weights (weighted and turned into confidences like training data).
        item_idx : (m,) int
        top : int
            Terms kept per item.

        Returns
        -------
        totals : (m,) float32
            The fold-in score of each item (the sum of every term).
        terms : list of m lists of (history item idx, contribution), largest first
        """
        self._check_fitted()
        # no threadpool_limits here: finding the BLAS libraries costs ~5 ms a call, more than the
        # (factors x factors) solves it would pin to one thread
        conf = self._confidence(sp.csr_matrix(row, dtype=np.float32))
        totals, terms, weights = [], [], None
        for i in np.atleast_1d(np.asarray(item_idx, dtype=np.int64)):
            total, best, weights = self._cpu_model().explain(0, conf, int(i), user_weights=weights, N=top)
            totals.append(total)
            terms.append([(int(j), float(c)) for j, c in best])
        return np.asarray(totals, np.float32), terms

    # ------------------------------------------------------------------ vectors (EmbeddingRecommender)
    def _user_vectors(self) -> np.ndarray:
        return self.user_factors_

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _new_user_vectors(self, rows: sp.csr_matrix) -> np.ndarray:
        return self.fold_in(rows)
