"""Hybrid recommender: CF and content candidates re-ranked by a learned model.

1. **Components** (fitted on the training interactions): ALS, the content->CF bridge (which gives
   cold items factors from their media), content profiles (fused vector and each modality block)
   and popularity.
2. **Candidates** per user: the top ``n_candidates`` of every component, so warm and cold items
   enter one pool.
3. **Features** per (user, item): each component's raw score and its z-score within the user's
   row (ALS, bridge, item-kNN, content per block), whether the item has media, the user's
   activity. Item popularity and an "is cold" flag are deliberately *not* features: their relation
   to relevance shifts between the validation period and the future (new items are cold by
   definition and often popular), and a ranker that sees them learns "cold means irrelevant". Cold
   items compete through the bridge, whose scores live on the ALS scale.
4. **Ranker**: gradient boosting (or logistic regression) trained on *validation* interactions as
   positives against hard negatives drawn from the same candidate pools (never on test). When no
   validation part is given, the latest 20% of each user's training interactions (random 20% if
   there are no timestamps) play that role.
5. **Cold-start simulation**: validation periods rarely contain items that were cold at training
   time, so a ranker trained naively learns that "cold" means "never relevant". The ranker's
   training features therefore come from components fitted with a random share
   (``cold_simulation``) of the items' training interactions removed: validation positives on those
   items look exactly like cold items at serving time (no CF signal, bridge factors from media).
   The components are then refitted on all training interactions for serving.

Items outside a user's candidate pool keep the ALS order below every candidate, so the full
ranking (and exact AUC) stays defined.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError
from recsys.models.base import Recommender, batch_size_for

RANKERS = ("gbm", "logistic")


def _zscore(s: np.ndarray) -> np.ndarray:
    """Row-wise standardisation of a (b, n) score block (constant rows give 0)."""
    mu = s.mean(axis=1, keepdims=True)
    sd = s.std(axis=1, keepdims=True)
    return np.divide(s - mu, sd, out=np.zeros_like(s), where=sd > 1e-12)


def _top_mask(s: np.ndarray, c: int) -> np.ndarray:
    """(b, n) bool: the ``c`` highest entries of each row."""
    b, n = s.shape
    c = min(c, n)
    m = np.zeros((b, n), dtype=bool)
    if c == n:
        m[:] = True
        return m
    part = np.argpartition(-s, c - 1, axis=1)[:, :c]
    np.put_along_axis(m, part, True, axis=1)
    return m


class Hybrid(Recommender):
    """ALS + bridge + content + popularity, re-ranked by a learned model.

    Parameters
    ----------
    content_blocks : tuple of str or None
        Feature blocks for content components; None = ``fused`` plus every modality block.
    n_candidates : int
        Candidates taken from each component per user.
    ranker : {"gbm", "logistic"}
    n_negatives : int
        Negatives per positive when training the ranker (hard ones from the candidate pool).
    cold_simulation : float
        Share of warm items made cold while building the ranker's training data (0 disables).
    als_params, knn_params, bridge_params, content_params : dict, optional
        Settings of the components.
    seed : int
    """

    name = "hybrid"
    uses_features = True
    uses_validation = True

    def __init__(
        self,
        content_blocks: tuple[str, ...] | None = None,
        n_candidates: int = 100,
        ranker: str = "gbm",
        n_negatives: int = 20,
        cold_simulation: float = 0.2,
        als_params: dict | None = None,
        knn_params: dict | None = None,
        bridge_params: dict | None = None,
        content_params: dict | None = None,
        seed: int = 0,
    ) -> None:
        self.content_blocks = content_blocks
        self.n_candidates = n_candidates
        self.ranker = ranker
        self.n_negatives = n_negatives
        self.cold_simulation = cold_simulation
        self.als_params = als_params
        self.knn_params = knn_params
        self.bridge_params = bridge_params
        self.content_params = content_params
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def fit(self, interactions: Interactions, item_features=None, val: Interactions | None = None) -> "Hybrid":
        """Fit the components on ``interactions`` and the ranker on ``val``.

        Parameters
        ----------
        interactions : Interactions
            Training interactions.
        item_features : ItemFeatures
            Aligned to the item map (required).
        val : Interactions, optional
            Held-out interactions of the same id maps for training the ranker; when omitted the
            latest 20% of each user's training interactions are held out internally.
        """
        if item_features is None:
            raise DataError("the hybrid model needs item features: pass item_features= (avrec features)")
        if self.ranker not in RANKERS:
            raise ConfigError(f"ranker must be one of {RANKERS}, got {self.ranker!r}")
        if self.n_candidates < 1 or self.n_negatives < 1:
            raise ConfigError("n_candidates and n_negatives must be >= 1")
        self._val = val
        return super().fit(interactions, item_features)

    def _fit(self, interactions, item_features) -> None:
        from recsys.split import random_split, temporal_split

        val, self._val = self._val, None
        self.block_names_ = self._blocks(item_features)
        if val is None:
            inner = (temporal_split(interactions, 0.2, per_user=True) if interactions.timestamps is not None
                     else random_split(interactions, 0.2, seed=self.seed))
            base, val = inner.train, inner.test
            self.ranker_source_ = "internal-holdout"
        else:
            if not val.same_maps(interactions):
                raise DataError("val must share the training interactions' id maps (parts of one split)")
            base = interactions
            self.ranker_source_ = "validation"
        ranker_train = self._simulate_cold(base)
        self._fit_components(ranker_train, item_features)
        self._fit_ranker(ranker_train, val)
        self._fit_components(interactions, item_features)  # serving components see all training data

    def _simulate_cold(self, train: Interactions) -> Interactions:
        """``train`` without the interactions of a random ``cold_simulation`` share of warm items."""
        if not 0 <= self.cold_simulation < 1:
            raise ConfigError(f"cold_simulation must be in [0, 1), got {self.cold_simulation}")
        warm = np.flatnonzero(train.item_counts() > 0)
        n = int(round(self.cold_simulation * len(warm)))
        self.simulated_cold_ = np.sort(np.random.default_rng(self.seed).choice(warm, size=n, replace=False))
        if n == 0:
            return train
        drop = np.zeros(train.n_items, dtype=bool)
        drop[self.simulated_cold_] = True
        return train.subset(~drop[train.matrix.indices])

    def _blocks(self, item_features) -> tuple[str, ...]:
        if self.content_blocks is not None:
            return tuple(self.content_blocks)
        names = ["fused"] if item_features.fused is not None else []
        # one component per modality: the first block of each mask
        seen = set()
        for block, mask in item_features.block_masks.items():
            if mask not in seen:
                seen.add(mask)
                names.append(block)
        if not names:
            raise DataError("item features have no blocks")
        return tuple(names)

    def _fit_components(self, train: Interactions, item_features) -> None:
        from recsys.models.als import ALS
        from recsys.models.bridge import Bridge
        from recsys.models.content import Content

        from recsys.models.knn import ItemKNN

        self.als_ = ALS(**(self.als_params or {})).fit(train)
        self.itemknn_ = ItemKNN(**(self.knn_params or {})).fit(train)
        bp = dict(self.bridge_params or {})
        bp.setdefault("block", "fused" if "fused" in self.block_names_ else self.block_names_[0])
        bp.setdefault("seed", self.seed)
        self.bridge_ = Bridge(**bp).fit_from(self.als_, train, item_features)
        cp = dict(self.content_params or {})
        self.contents_ = {b: Content(block=b, **cp).fit(train, item_features) for b in self.block_names_}
        self.comp_train_ = train
        counts = train.item_counts().astype(np.float32)
        self.log_pop_ = np.log1p(counts)
        self.cold_ = (counts == 0).astype(np.float32)
        self.has_media_ = item_features.mask_of("fused" if item_features.fused is not None else self.block_names_[0]).astype(np.float32)

    # ------------------------------------------------------------------ features
    @property
    def feature_names(self) -> list[str]:
        names = ["als", "als_z", "bridge", "bridge_z", "itemknn", "itemknn_z"]
        for b in self.block_names_:
            names += [f"content_{b}", f"content_{b}_z"]
        return names + ["has_media", "user_log_activity"]

    def _component_blocks(self, users: np.ndarray, rows: sp.csr_matrix) -> list[np.ndarray]:
        """Dense (b, n_items) score blocks of every component, in ``feature_names`` order."""
        blocks = []
        for comp in [self.als_, self.bridge_, self.itemknn_, *self.contents_.values()]:
            s = comp.scores(users, rows)
            blocks += [s, _zscore(s)]
        return blocks

    def _candidates(self, blocks: list[np.ndarray], rows: sp.csr_matrix) -> np.ndarray:
        """(b, n_items) bool: union of every component's top-n plus the most popular items."""
        mask = np.zeros(blocks[0].shape, dtype=bool)
        for s in blocks[::2]:
            mask |= _top_mask(s, self.n_candidates)
        mask |= _top_mask(np.broadcast_to(self.log_pop_, blocks[0].shape), self.n_candidates)
        r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        mask[r, rows.indices] = False  # seen items are never candidates
        return mask

    def _pair_features(self, blocks: list[np.ndarray], rows: sp.csr_matrix, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """(m, n_features) float32 for pairs (batch row r, item c)."""
        activity = np.log1p(np.diff(rows.indptr)).astype(np.float32)
        cols = [b[r, c] for b in blocks]
        cols += [self.has_media_[c], activity[r]]
        return np.column_stack(cols).astype(np.float32)

    # ------------------------------------------------------------------ ranker
    def _fit_ranker(self, train: Interactions, val: Interactions) -> None:
        rng = np.random.default_rng(self.seed)
        users = np.flatnonzero(val.user_counts() > 0)
        xs, ys = [], []
        bs = batch_size_for(train.n_items, 512)
        for start in range(0, len(users), bs):
            batch = users[start : start + bs]
            rows = train.matrix[batch]
            blocks = self._component_blocks(batch, rows)
            cand = self._candidates(blocks, rows)
            pos = val.matrix[batch]
            pr = np.repeat(np.arange(len(batch)), np.diff(pos.indptr))
            pc = pos.indices
            cand[pr, pc] = False
            # hard negatives: random picks from each user's candidate pool
            nr, nc = np.nonzero(cand)
            n_pos = np.bincount(pr, minlength=len(batch))
            take = rng.random(len(nr)) < np.minimum(1.0, (self.n_negatives * n_pos[nr]) / np.maximum(cand.sum(1)[nr], 1))
            nr, nc = nr[take], nc[take]
            xs.append(self._pair_features(blocks, rows, np.concatenate([pr, nr]), np.concatenate([pc, nc])))
            ys.append(np.concatenate([np.ones(len(pr)), np.zeros(len(nr))]))
        x, y = np.concatenate(xs), np.concatenate(ys)
        if y.sum() == 0 or y.sum() == len(y):
            raise DataError("the ranker needs validation positives and negatives; is the validation part empty?")
        if self.ranker == "gbm":
            from sklearn.ensemble import HistGradientBoostingClassifier

            model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=31,
                                                   l2_regularization=1.0, random_state=self.seed,
                                                   early_stopping=True, validation_fraction=0.15)
        else:
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0))
        model.fit(x, y)
        self.ranker_model_ = model
        self.ranker_rows_ = int(len(y))
        self.ranker_positives_ = int(y.sum())

    # ------------------------------------------------------------------ scoring
    def _rank(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        blocks = self._component_blocks(users, rows)
        cand = self._candidates(blocks, rows)
        # outside the pool: ALS order squeezed into (0, 1), below every candidate (1, 2)
        out = 1.0 / (1.0 + np.exp(-np.clip(blocks[1], -30, 30)))
        r, c = np.nonzero(cand)
        if len(r):
            p = self.ranker_model_.predict_proba(self._pair_features(blocks, rows, r, c))[:, 1]
            out[r, c] = 1.0 + p
        return out.astype(np.float32)

    def _score_users(self, users, rows) -> np.ndarray:
        return self._rank(users, rows)

    def _score_new_users(self, rows) -> np.ndarray:
        return self._rank(np.full(rows.shape[0], -1, dtype=np.int64), rows)

    def _item_similarities(self, item_idx: int) -> np.ndarray:
        return self.bridge_._item_similarities(item_idx)

    def knows_item(self, item_idx: int) -> bool:
        self._check_fitted()
        return self.bridge_.knows_item(item_idx)
