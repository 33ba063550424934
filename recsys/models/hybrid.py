"""Hybrid recommender: CF and content candidates re-ranked by a learned model.

1. **Components** (fitted on the training interactions): ALS, the content->CF bridge (which gives
   cold items factors from their media), item-kNN and content profiles (the fused vector and each
   modality block).
2. **Candidates** per user: the top items of every component, the cold items closest to the
   user's content profile and the most popular items (``candidates``), so warm and cold items
   enter one pool; seen items never do.
3. **Features** per (user, item): each component's raw score and its z-score within the user's row,
   ALS log-rank, the item's training popularity and whether it is cold (no training interactions),
   whether it has media, the user's activity; optionally (``val_popularity``) the item's
   interaction count in the validation part (cross-fitted over user folds while training, so a
   user's own positive never feeds their feature).
4. **Ranker** (:mod:`recsys.models.ranker`): LambdaMART by default, trained on *validation*
   interactions as the relevant items of each validation user's candidate list (never on test).
   When no validation part is given, the latest 20% of each user's training interactions (random
   20% without timestamps) play that role.
5. **Cold-start simulation**: a validation part from *before* the items that are new at test time
   has no positives on cold items, and a ranker trained on it learns "cold means irrelevant".
   With ``cold_simulation`` (``"auto"``: when under 1% of validation interactions hit items cold
   in training) the ranker's training features come from components fitted with a random 20% of
   the warm items made cold; their validation positives then look exactly like cold items at
   serving time. The components are refitted on all training interactions for serving.

Items outside a user's candidate pool keep the ALS order below every candidate, so the full
ranking (and exact AUC) stays defined.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError
from recsys.models.base import Recommender, batch_size_for, pad_rows
from recsys.models.ranker import KINDS, Ranker

DEFAULT_CANDIDATES = {"als": 200, "bridge": 100, "itemknn": 50, "content": 50, "cold": 100, "popularity": 50}


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


def _rank_in_row(s: np.ndarray, r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(m,) number of entries of row ``s[r[j]]`` strictly greater than ``v[j]``."""
    asc = np.sort(s, axis=1)
    out = np.empty(len(r), dtype=np.int64)
    order = np.argsort(r, kind="stable")
    bounds = np.searchsorted(r[order], np.arange(s.shape[0] + 1))
    for row in range(s.shape[0]):
        sel = order[bounds[row] : bounds[row + 1]]
        if len(sel):
            out[sel] = s.shape[1] - np.searchsorted(asc[row], v[sel], side="right")
    return out


class Hybrid(Recommender):
    """ALS + bridge + item-kNN + content, re-ranked by a learned model.

    Parameters
    ----------
    content_blocks : tuple of str or None
        Feature blocks for content components; None = ``fused`` plus one block per modality.
    candidates : dict, optional
        Candidates taken per user from each component (keys ``als``, ``bridge``, ``itemknn``,
        ``content`` (per block), and ``cold``: the cold items closest to the user's content
        profile (first content block), so new items reach the ranker even when no component
        ranks them high; ``popularity``: the most popular training items); missing keys use
        ``DEFAULT_CANDIDATES``.
    ranker : {"lambdarank", "binary", "logistic"}
    ranker_params : dict, optional
        :class:`~recsys.models.ranker.Ranker` settings (``rounds``, ``learning_rate``, ``num_leaves``,
        ``min_data_in_leaf``); defaults chosen by 4-fold cross-validation over TikTok validation users.
    cold_simulation : float or "auto"
        Share of warm items made cold while building the ranker's training data (0 disables;
        ``"auto"``: 0.2 when the validation part has (almost) no positives on cold items, else 0).
    val_popularity : bool
        Add the item's validation-interaction count as a feature (the most recent popularity a
        system knows). Off by default: it makes the model use validation interactions as input,
        which published protocols do not; results with it are reported separately.
    cold_share : float in [0, 1) or None
        Exposure policy for cold items (no training interactions: new uploads); default 0.25.
        None ranks them purely by the learned ranker. A share adds one constant to every cold candidate's ranker
        score, chosen at fit time so that cold items fill this share of the top-20 slots of up
        to 2,000 training users' lists (seeded). The learned ranker optimises the overall metric and
        gives new items few slots; a platform that must expose new content sets this, and the
        README reports the trade-off it buys (TikTok test: see "Cold-item exposure").
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
        candidates: dict | None = None,
        ranker: str = "lambdarank",
        ranker_params: dict | None = None,
        cold_simulation: float | str = "auto",
        val_popularity: bool = False,
        cold_share: float | None = 0.25,
        als_params: dict | None = None,
        knn_params: dict | None = None,
        bridge_params: dict | None = None,
        content_params: dict | None = None,
        seed: int = 0,
    ) -> None:
        self.content_blocks = content_blocks
        self.candidates = candidates
        self.ranker = ranker
        self.ranker_params = ranker_params
        self.cold_simulation = cold_simulation
        self.val_popularity = val_popularity
        self.cold_share = cold_share
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
        if self.ranker not in KINDS:
            raise ConfigError(f"ranker must be one of {KINDS}, got {self.ranker!r}")
        unknown = set(self.candidates or {}) - set(DEFAULT_CANDIDATES)
        if unknown:
            raise ConfigError(f"unknown candidate sources {sorted(unknown)}; known: {sorted(DEFAULT_CANDIDATES)}")
        if self.cold_share is not None and not 0 <= self.cold_share < 1:
            raise ConfigError(f"cold_share must be in [0, 1) or None, got {self.cold_share}")
        if any(int(v) < 0 for v in (self.candidates or {}).values()) or self._n_cand("als") < 1:
            raise ConfigError("candidate counts must be >= 0 and the ALS count >= 1")
        self._val = val
        return super().fit(interactions, item_features)

    def _n_cand(self, source: str) -> int:
        return int({**DEFAULT_CANDIDATES, **(self.candidates or {})}[source])

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
        share = self._simulation_share(base, val)
        ranker_train = self._simulate_cold(base, share)
        self._fit_components(ranker_train, item_features)
        val_pop_by_user = self._fit_val_popularity(val)
        self._fit_ranker(ranker_train, val, val_pop_by_user)
        if ranker_train is not interactions:  # serving components see all training data
            self._fit_components(interactions, item_features)
        self.cold_boost_ = 0.0
        if self.cold_share is not None:
            self.cold_boost_ = self._calibrate_cold_boost(interactions)

    def _simulation_share(self, train: Interactions, val: Interactions) -> float:
        if self.cold_simulation == "auto":
            cold = train.item_counts() == 0
            hits = cold[val.matrix.indices].mean() if val.nnz else 0.0
            return 0.2 if hits < 0.01 else 0.0
        share = float(self.cold_simulation)
        if not 0 <= share < 1:
            raise ConfigError(f"cold_simulation must be in [0, 1) or 'auto', got {self.cold_simulation}")
        return share

    def _simulate_cold(self, train: Interactions, share: float) -> Interactions:
        """``train`` without the interactions of a random ``share`` of its warm items."""
        warm = np.flatnonzero(train.item_counts() > 0)
        n = int(round(share * len(warm)))
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
        self.popular_ = np.argsort(-counts, kind="stable")[:max(self._n_cand("popularity"), 1)]
        self.cold_ = (counts == 0).astype(np.float32)

    def _fit_val_popularity(self, val: Interactions) -> tuple[np.ndarray, np.ndarray]:
        """Set ``val_pop_`` (log validation counts per item, for serving) and return the counts
        cross-fitted over 5 user folds for training the ranker: ``(fold of each user (n_users,),
        counts without that fold (5, n_items))``."""
        vm = val.matrix.tocoo()
        self.val_pop_ = np.log1p(np.bincount(vm.col, minlength=val.n_items)).astype(np.float32)
        fold = np.random.default_rng(self.seed).integers(0, 5, val.n_users)
        by_fold = np.stack([np.bincount(vm.col[fold[vm.row] != f], minlength=val.n_items) * 1.25
                            for f in range(5)])
        return fold, np.log1p(by_fold).astype(np.float32)

    # ------------------------------------------------------------------ features
    @property
    def feature_names(self) -> list[str]:
        names = ["als", "als_z", "als_log_rank", "bridge", "bridge_z", "itemknn", "itemknn_z"]
        for b in self.block_names_:
            names += [f"content_{b}", f"content_{b}_z"]
        names += ["item_log_pop", "item_is_cold", "has_media", "user_log_activity"]
        return names + (["item_val_pop"] if self.val_popularity else [])

    def _components(self) -> list[tuple[str, Recommender]]:
        return [("als", self.als_), ("bridge", self.bridge_), ("itemknn", self.itemknn_),
                *(("content", c) for c in self.contents_.values())]

    def _score_blocks(self, users: np.ndarray, rows: sp.csr_matrix) -> tuple[list[np.ndarray], np.ndarray]:
        """Dense (b, n_items) scores of every component (seen items at -inf) and the candidate mask."""
        r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        blocks, cand = [], np.zeros((len(users), self.n_items_), dtype=bool)
        for source, comp in self._components():
            s = comp.scores(users, rows)
            s[r, rows.indices] = -np.inf
            c = min(self._n_cand(source), self.n_items_)
            if c:
                np.put_along_axis(cand, np.argpartition(-s, c - 1, axis=1)[:, :c], True, axis=1)
            blocks.append(s)
        n_cold, cold = self._n_cand("cold"), np.flatnonzero(self.cold_ > 0)
        if n_cold and len(cold) and self.contents_:
            content = blocks[3]  # the first content block
            c = min(n_cold, len(cold))
            top = np.argpartition(-content[:, cold], c - 1, axis=1)[:, :c] if c < len(cold) else \
                np.broadcast_to(np.arange(len(cold)), (len(users), len(cold)))
            np.put_along_axis(cand, cold[top], True, axis=1)
        n_pop = min(self._n_cand("popularity"), self.n_items_)
        if n_pop:
            cand[:, self.popular_[:n_pop]] = True
        cand[r, rows.indices] = False  # seen items are never candidates
        return blocks, cand

    def _pair_features(self, blocks: list[np.ndarray], rows: sp.csr_matrix, r: np.ndarray, c: np.ndarray,
                       val_pop: np.ndarray | None) -> np.ndarray:
        """(m, n_features) float32 for pairs (batch row r, item c)."""
        activity = np.log1p(np.diff(rows.indptr)).astype(np.float32)
        cols = []
        for k, s in enumerate(blocks):
            finite = np.where(np.isfinite(s), s, np.nan)
            mu, sd = np.nanmean(finite, axis=1), np.nanstd(finite, axis=1)
            v = s[r, c]
            cols += [v, np.divide(v - mu[r], sd[r], out=np.zeros_like(v), where=sd[r] > 1e-12)]
            if k == 0:  # ALS rank of the pair among all unseen items
                cols.append(np.log1p(_rank_in_row(s, r, v)).astype(np.float32))
        cols += [self.log_pop_[c], self.cold_[c], self.bridge_.has_media_[c], activity[r]]
        if self.val_popularity:
            cols.append(val_pop[c] if val_pop.ndim == 1 else val_pop[r, c])
        return np.column_stack(cols).astype(np.float32)

    # ------------------------------------------------------------------ ranker
    def _user_batches(self, users: np.ndarray):
        """Consecutive slices of ``users`` small enough for the dense (batch, n_items) blocks."""
        bs = batch_size_for(self.n_items_, 256)
        for start in range(0, len(users), bs):
            yield users[start : start + bs]

    def _fit_ranker(self, train: Interactions, val: Interactions, val_pop_by_user) -> None:
        users = np.flatnonzero(val.user_counts() > 0)
        fold, by_fold = val_pop_by_user
        xs, ys, groups = [], [], []
        for batch in self._user_batches(users):
            rows = train.matrix[batch]
            blocks, cand = self._score_blocks(batch, rows)
            pos = val.matrix[batch]
            label = np.zeros(cand.shape, dtype=bool)
            label[np.repeat(np.arange(len(batch)), np.diff(pos.indptr)), pos.indices] = True
            keep = (label & cand).any(axis=1)  # a list without a relevant candidate teaches nothing
            r, c = np.nonzero(cand & keep[:, None])  # row-major: each user's rows are consecutive
            if not len(r):
                continue
            xs.append(self._pair_features(blocks, rows, r, c, by_fold[fold[batch]]))
            ys.append(label[r, c])
            groups.append(np.bincount(r, minlength=len(batch))[keep])
        if not xs:
            raise DataError("no validation user has a relevant item among the candidates; the ranker cannot learn")
        x, y, g = np.concatenate(xs), np.concatenate(ys).astype(np.float32), np.concatenate(groups)
        self.ranker_model_ = Ranker(self.ranker, seed=self.seed, **(self.ranker_params or {})).fit(x, y, g)
        self.ranker_rows_ = int(len(y))
        self.ranker_positives_ = int(y.sum())
        self.ranker_users_ = int(len(g))

    def _calibrate_cold_boost(self, train: Interactions, k: int = 20, max_users: int = 2000) -> float:
        """The constant added to cold candidates' ranker scores so cold items fill ``cold_share``
        of the top-``k`` slots of (up to ``max_users``) training users' lists."""
        rng = np.random.default_rng(self.seed)
        users = np.flatnonzero(train.user_counts() > 0)
        if len(users) > max_users:
            users = np.sort(rng.choice(users, size=max_users, replace=False))
        lists = []
        for batch in self._user_batches(users):
            _, r, c, p = self._candidate_scores(batch, train.matrix[batch])
            bounds = np.searchsorted(r, np.arange(len(batch) + 1))
            lists += [(p[a:b], self.cold_[c[a:b]] > 0) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if not lists or not any(cold.any() for _, cold in lists):
            return 0.0

        def share(boost: float) -> float:
            total = 0.0
            for p, cold in lists:
                top = np.argsort(-(p + boost * cold), kind="stable")[:k]
                total += cold[top].mean()
            return total / len(lists)

        lo, hi = -50.0, 50.0  # ranker raw scores are O(1); bisection on a monotone share
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if share(mid) < self.cold_share else (lo, mid)
        # hi reaches the share; a boost that only breaks exact ties must survive float32 scores
        return float(hi) if hi <= 0 else max(float(hi), 1e-3)

    def feature_importance(self) -> dict[str, float]:
        """Ranker importance per feature name (gain share, or |standardised coefficient|)."""
        imp = self.ranker_model_.feature_importance()
        imp = imp / max(float(np.sum(imp)), 1e-12)
        return dict(zip(self.feature_names, map(float, imp)))

    # ------------------------------------------------------------------ scoring
    def _candidate_scores(self, users: np.ndarray, rows: sp.csr_matrix):
        """``(blocks, r, c, p)``: component score blocks, the candidate pairs (batch row ``r``,
        item ``c``, row-major) and their ranker scores before the cold-item boost."""
        blocks, cand = self._score_blocks(users, rows)
        r, c = np.nonzero(cand)
        p = np.zeros(0)
        if len(r):
            p = self.ranker_model_.predict(self._pair_features(blocks, rows, r, c, self.val_pop_))
        return blocks, r, c, p

    def _rank(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        blocks, r, c, p = self._candidate_scores(users, rows)
        p = p + self.cold_boost_ * self.cold_[c]  # exposure policy for new items (0 by default)
        # Candidates keep their raw ranker scores (a squashing function would tie high scores in
        # float32); items outside the pool keep the ALS order inside (floor - 2, floor - 1), below
        # the row's lowest candidate.
        floor = np.zeros(len(users))
        if len(r):
            np.minimum.at(floor, r, p)
        als = np.where(np.isfinite(blocks[0]), blocks[0], 0.0)
        out = floor[:, None] - 2.0 + 1.0 / (1.0 + np.exp(-np.clip(als, -30, 30)))
        out[r, c] = p
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

    # ------------------------------------------------------------------ state (bundles)
    _state_attrs = ("als_", "itemknn_", "bridge_", "contents_", "block_names_", "log_pop_", "cold_",
                    "val_pop_", "cold_boost_", "popular_")

    def get_state(self) -> dict:
        state = super().get_state()
        state["block_names_"] = list(self.block_names_)
        state["ranker"] = self.ranker_model_.get_state()
        return state

    def _restore(self, state, item_features) -> None:
        self.block_names_ = tuple(self.block_names_)
        self.ranker_model_ = Ranker.from_state(state["ranker"])
        self.bridge_.als_ = self.als_  # one ALS, shared as at fit time
        self.bridge_.user_factors_ = self.als_.user_factors_
        self.comp_train_ = self.train_

    def _grow_items(self, m: int, new_features) -> None:
        for _, comp in self._components():
            if comp.n_items_ < self.n_items_:
                comp._grow(self.train_, new_features)
        self.comp_train_ = self.train_
        self.log_pop_ = pad_rows(self.log_pop_, m)
        self.cold_ = pad_rows(self.cold_, m, np.ones(m, np.float32))  # popular_ keeps its items
        self.val_pop_ = pad_rows(self.val_pop_, m)
