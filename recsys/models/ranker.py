"""Learned rankers for the hybrid: LambdaMART (LightGBM), pointwise boosting, logistic regression.

Each ranker saves as plain values (:meth:`Ranker.get_state`): LightGBM's own text model format or
the logistic coefficients as arrays, so bundles never pickle a fitted estimator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys.errors import BundleError, ConfigError, DataError

KINDS = ("lambdarank", "binary", "logistic")


class Ranker:
    """A scoring function of per-(user, item) feature rows, trained from grouped labels.

    Parameters
    ----------
    kind : {"lambdarank", "binary", "logistic"}
        ``lambdarank``: LightGBM LambdaMART optimising NDCG within each user's candidate list (the
        default: it learns how features trade off *within* a list, which is what ranking needs);
        ``binary``: LightGBM with log-loss on the same rows; ``logistic``: standardised logistic
        regression (scikit-learn), a linear baseline.
    rounds, learning_rate, num_leaves, min_data_in_leaf : LightGBM settings
    seed : int
    threads : int
        LightGBM threads (0 = its default: all cores).
    """

    def __init__(self, kind: str = "lambdarank", rounds: int = 300, learning_rate: float = 0.05,
                 num_leaves: int = 15, min_data_in_leaf: int = 50, seed: int = 0, threads: int = 0) -> None:
        if kind not in KINDS:
            raise ConfigError(f"ranker must be one of {KINDS}, got {kind!r}")
        if rounds < 1 or num_leaves < 2 or min_data_in_leaf < 1 or learning_rate <= 0:
            raise ConfigError("ranker needs rounds >= 1, num_leaves >= 2, min_data_in_leaf >= 1, learning_rate > 0")
        self.kind = kind
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
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
        if self.kind == "logistic":
            return ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return self.booster_.predict(x, raw_score=True, num_threads=self.threads)

    def feature_importance(self) -> np.ndarray:
        """(f,) gains (LightGBM) or absolute standardised coefficients (logistic)."""
        if self.kind == "logistic":
            return np.abs(self.coef_)
        return self.booster_.feature_importance("gain")

    # ------------------------------------------------------------------ state
    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def get_state(self) -> dict[str, Any]:
        """Settings plus the model as plain values (LightGBM text format or arrays)."""
        state: dict[str, Any] = {"params": self.get_params(), "n_features": int(self.n_features_)}
        if self.kind == "logistic":
            state.update(mean=self.mean_, scale=self.scale_, coef=self.coef_, intercept=self.intercept_)
        else:
            state["model"] = self.booster_.model_to_string()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Ranker":
        try:
            r = cls(**state["params"])
            r.n_features_ = int(state["n_features"])
            if r.kind == "logistic":
                r.mean_, r.scale_ = np.asarray(state["mean"]), np.asarray(state["scale"])
                r.coef_, r.intercept_ = np.asarray(state["coef"]), float(state["intercept"])
            else:
                import lightgbm as lgb

                r.booster_ = lgb.Booster(model_str=state["model"])
        except (KeyError, TypeError) as exc:
            raise BundleError(f"ranker state is incomplete or from another version: {exc}") from None
        return r
