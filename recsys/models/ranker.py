"""Learned rankers for the hybrid: a linear listwise model (coordinate ascent on NDCG), LambdaMART
(LightGBM), pointwise boosting, logistic regression.

Each ranker saves as plain values (:meth:`Ranker.get_state`): LightGBM's own text model format or
the linear coefficients as arrays, so bundles never pickle a fitted estimator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys.errors import BundleError, ConfigError, DataError

KINDS = ("linear", "lambdarank", "binary", "logistic")

#: weights tried per feature by the coordinate ascent of the ``linear`` ranker (features standardised)
LINEAR_GRID = (-1.0, -0.5, -0.25, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


class Ranker:
    """A scoring function of per-(user, item) feature rows, trained from grouped labels.

    Parameters
    ----------
    kind : {"linear", "lambdarank", "binary", "logistic"}
        ``linear``: a weighted sum of standardised features whose weights maximise NDCG@``ndcg_k``
        of the grouped lists by coordinate ascent (Metzler & Croft 2007; RankLib's CoorAscent): a
        handful of weights, robust when the labels come from another period than the lists it
        will rank; ``lambdarank``: LightGBM LambdaMART optimising NDCG within each user's
        candidate list (nonlinear: it learns how features trade off *within* a list);
        ``binary``: LightGBM with log-loss on the same rows; ``logistic``: standardised logistic
        regression (scikit-learn), a linear baseline.
    rounds, learning_rate, num_leaves, min_data_in_leaf : LightGBM settings
    passes : int
        Coordinate-ascent passes over the features (``linear``).
    ndcg_k : int
        Cut-off of the NDCG the ``linear`` ranker maximises.
    seed : int
    threads : int
        LightGBM threads (0 = its default: all cores).
    """

    def __init__(self, kind: str = "lambdarank", rounds: int = 300, learning_rate: float = 0.05,
                 num_leaves: int = 15, min_data_in_leaf: int = 50, passes: int = 3, ndcg_k: int = 20,
                 seed: int = 0, threads: int = 0) -> None:
        if kind not in KINDS:
            raise ConfigError(f"ranker must be one of {KINDS}, got {kind!r}")
        if rounds < 1 or num_leaves < 2 or min_data_in_leaf < 1 or learning_rate <= 0 or passes < 1 or ndcg_k < 1:
            raise ConfigError("ranker needs rounds >= 1, num_leaves >= 2, min_data_in_leaf >= 1, learning_rate > 0, "
                              "passes >= 1 and ndcg_k >= 1")
        self.kind = kind
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.passes = passes
        self.ndcg_k = ndcg_k
        self.seed = seed
        self.threads = threads

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> "Ranker":
        """Train on feature rows grouped by user.

        Parameters
        ----------
        x : (m, f) float32
        y : (m,) 0/1 relevance
        groups : (g,) int, sizes of consecutive row groups (one per user), summing to m
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if len(x) != len(y) or int(np.sum(groups)) != len(y):
            raise DataError(f"ranker rows ({len(x)}), labels ({len(y)}) and group sizes ({int(np.sum(groups))}) disagree")
        if y.sum() == 0 or y.sum() == len(y):
            raise DataError("the ranker needs positives and negatives; is the validation part empty?")
        self.n_features_ = x.shape[1]
        if self.kind == "linear":
            self.mean_ = x.mean(axis=0)
            self.scale_ = np.where(x.std(axis=0) > 1e-12, x.std(axis=0), 1.0).astype(np.float32)
            self.coef_, self.train_ndcg_ = coordinate_ascent((x - self.mean_) / self.scale_, y, groups,
                                                             k=self.ndcg_k, passes=self.passes)
            self.intercept_ = 0.0
            return self
        if self.kind == "logistic":
            from sklearn.linear_model import LogisticRegression

            self.mean_ = x.mean(axis=0)
            self.scale_ = np.where(x.std(axis=0) > 1e-12, x.std(axis=0), 1.0).astype(np.float32)
            lr = LogisticRegression(max_iter=1000, C=1.0).fit((x - self.mean_) / self.scale_, y)
            self.coef_ = lr.coef_.ravel().astype(np.float64)
            self.intercept_ = float(lr.intercept_[0])
            return self
        import lightgbm as lgb

        params = {
            "objective": self.kind, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf, "feature_fraction": 0.9, "seed": self.seed,
            "deterministic": True, "verbose": -1, "num_threads": self.threads,
        }
        if self.kind == "lambdarank":
            params["lambdarank_truncation_level"] = 50
        data = lgb.Dataset(x, y, group=np.asarray(groups) if self.kind == "lambdarank" else None)
        self.booster_ = lgb.train(params, data, num_boost_round=self.rounds)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(m,) float64 scores; higher ranks first (not probabilities)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features_:
            raise DataError(f"ranker expects (m, {self.n_features_}) features, got {x.shape}")
        if self.kind in ("logistic", "linear"):
            return ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return self.booster_.predict(x, raw_score=True, num_threads=self.threads)

    def feature_importance(self) -> np.ndarray:
        """(f,) gains (LightGBM) or absolute standardised coefficients (linear, logistic)."""
        if self.kind in ("logistic", "linear"):
            return np.abs(self.coef_)
        return self.booster_.feature_importance("gain")

    # ------------------------------------------------------------------ state
    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def get_state(self) -> dict[str, Any]:
        """Settings plus the model as plain values (LightGBM text format or arrays)."""
        state: dict[str, Any] = {"params": self.get_params(), "n_features": int(self.n_features_)}
        if self.kind in ("logistic", "linear"):
            state.update(mean=self.mean_, scale=self.scale_, coef=self.coef_, intercept=self.intercept_)
        else:
            state["model"] = self.booster_.model_to_string()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Ranker":
        try:
            r = cls(**state["params"])
            r.n_features_ = int(state["n_features"])
            if r.kind in ("logistic", "linear"):
                r.mean_, r.scale_ = np.asarray(state["mean"]), np.asarray(state["scale"])
                r.coef_, r.intercept_ = np.asarray(state["coef"]), float(state["intercept"])
            else:
                import lightgbm as lgb

                r.booster_ = lgb.Booster(model_str=state["model"])
        except (KeyError, TypeError) as exc:
            raise BundleError(f"ranker state is incomplete or from another version: {exc}") from None
        return r


def grouped_ndcg(scores: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int = 20) -> float:
    """Mean NDCG@k over consecutive row groups (one list per group), ties counted half.

    Each positive's position is the number of rows of its group that score higher (plus half
    the ties), computed with one pass per positive slot, so no sort is needed: O(rows) per slot.

    Parameters
    ----------
    scores : (m,) float
    y : (m,) 0/1
    groups : (g,) int, sizes of consecutive groups summing to m

    Returns
    -------
    float, NDCG@k averaged over groups with at least one positive
    """
    groups = np.asarray(groups, dtype=np.int64)
    gid = np.repeat(np.arange(len(groups)), groups)
    pos = np.flatnonzero(np.asarray(y) > 0)
    n_pos = np.bincount(gid[pos], minlength=len(groups))
    has = n_pos > 0
    if not has.any():
        return 0.0
    # slot of each positive within its group (0, 1, ...): positives are listed in row order
    first = np.concatenate([[0], np.cumsum(n_pos)[:-1]])
    slot = np.arange(len(pos)) - first[gid[pos]]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = np.zeros(len(groups))
    for s in range(int(slot.max()) + 1):
        p = pos[slot == s]
        ref = np.full(len(groups), np.inf)
        ref[gid[p]] = scores[p]
        d = scores - ref[gid]
        above = np.bincount(gid, weights=(d > 0) + 0.5 * (d == 0), minlength=len(groups))[gid[p]] - 0.5
        r = np.floor(above).astype(np.int64)
        dcg[gid[p]] += np.where(r < k, disc[np.minimum(r, k - 1)], 0.0)
    ideal = np.cumsum(disc)[np.minimum(n_pos, k) - 1]
    return float(np.mean(dcg[has] / ideal[has]))


def coordinate_ascent(x: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int = 20,
                      passes: int = 3, grid: tuple[float, ...] = LINEAR_GRID) -> tuple[np.ndarray, float]:
    """Weights of a linear scoring function maximising grouped NDCG@k by coordinate ascent.

    Starts from the best single feature (weight 1); each pass tries every grid value for every
    weight in turn and keeps a change only if it raises NDCG (deterministic, no randomness).

    Parameters
    ----------
    x : (m, f) float32, standardised features
    y : (m,) 0/1 labels
    groups : (g,) int, consecutive group sizes

    Returns
    -------
    coef : (f,) float64
    ndcg : float, training NDCG@k of ``x @ coef``
    """
    f = x.shape[1]
    single = [grouped_ndcg(x[:, j], y, groups, k) for j in range(f)]
    w = np.zeros(f)
    w[int(np.argmax(single))] = 1.0
    best = grouped_ndcg(x @ w, y, groups, k)
    for _ in range(passes):
        improved = False
        for j in range(f):
            base = x @ w - w[j] * x[:, j]
            for g in grid:
                if g == w[j] or (g == 0 and not np.any(np.delete(w, j))):
                    continue
                v = grouped_ndcg(base + g * x[:, j], y, groups, k)
                if v > best + 1e-9:
                    best, w[j], improved = v, g, True
        if not improved:
            break
    return w, best
