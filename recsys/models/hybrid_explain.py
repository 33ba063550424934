"""Explanations of the hybrid's ranker: feature importance and per-group contributions to a score."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.models import exposure


class RankerExplanations:
    """Mixin of :class:`~recsys.models.hybrid.Hybrid`: what the ranker's score of an item is made of."""

    def feature_importance(self) -> dict[str, float]:
        """Ranker importance per ranker feature (gain share, or |standardised coefficient| share)."""
        imp = self.ranker_model_.feature_importance()
        imp = imp / max(float(np.sum(imp)), 1e-12)
        return dict(zip(self.ranker_feature_names, map(float, imp)))

    def feature_contributions(self, user_idx: int, row: sp.csr_matrix, item_idx: np.ndarray) -> dict[str, np.ndarray]:
        """Per-group contributions to the final score of items for one user (explanations).

        Groups: ``cf`` (ALS, item-kNN), ``media`` (the bridge's media->CF score and the fused
        content profile), ``audio`` / ``video`` / ``text`` (content profiles of that modality),
        ``popularity``, ``new_item_policy`` (the cold flag's learned offset plus the lift the
        ``cold_share`` policy gives the item in this user's list) and ``bias``. Linear ranker: coefficient x standardised input; LightGBM: SHAP values
        (``pred_contrib``). For candidates the groups sum to the score ``recommend`` returns.

        Parameters
        ----------
        user_idx : int (-1 for a user unknown at fit time)
        row : CSR (1, n_items), the user's interactions
        item_idx : (m,) int

        Returns
        -------
        dict of group -> (m,) float32
        """
        from recsys.explain import MODALITY_BLOCKS

        self._check_fitted()
        items = np.asarray(item_idx, dtype=np.int64)
        users = np.array([user_idx], dtype=np.int64)
        row = sp.csr_matrix(row, dtype=np.float32)
        blocks, _ = self._score_blocks(self, users, row)
        inp = self._ranker_input(self._pair_features(self, blocks, row, np.zeros(len(items), np.int64), items))
        rk = self.ranker_model_
        if rk.kind in ("linear", "logistic"):
            per = (inp - rk.mean_) / rk.scale_ * rk.coef_
            bias = np.full(len(items), rk.intercept_)
        else:
            shap = rk.booster_.predict(inp, pred_contrib=True)
            per, bias = shap[:, :-1], shap[:, -1]
        modality = {b: m for m, names in MODALITY_BLOCKS.items() for b in names}

        def group(name: str) -> str:
            base = name.split("|")[0].removesuffix("_z").removesuffix("_log_rank")
            if base in ("als", "itemknn"):
                return "cf"
            if base in ("media", "content_fused"):
                return "media"
            if base.startswith("content_"):
                return modality.get(base.removeprefix("content_"), "media")
            if base in ("item_log_pop", "user_log_activity"):
                return "popularity"
            return "new_item_policy"  # item_is_cold, has_media

        out: dict[str, np.ndarray] = {}
        for j, name in enumerate(self._ranker_names()):
            g = group(name)
            out[g] = out.get(g, 0.0) + per[:, j]
        out["new_item_policy"] = out.get("new_item_policy", 0.0) + self._policy_lift(users, row, items)
        out["bias"] = bias
        return {g: np.asarray(v, dtype=np.float32) for g, v in out.items()}

    def _policy_lift(self, users: np.ndarray, rows: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
        """(m,) what the exposure policy adds to ``items``' scores in one user's list (0 off the list)."""
        lift = np.zeros(len(items))
        if not exposure.quota(self.cold_share) or not (self.cold_[items] > 0).any():
            return lift
        _, r, c, p = self._candidate_scores(users, rows)
        delta = dict(zip(c.tolist(), (self._exposed(p, r, c, len(users)) - p).tolist()))
        return np.array([delta.get(int(i), 0.0) for i in items])
