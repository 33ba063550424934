"""Hybrid recommender: CF and content scores combined by a ranker learned inside the training data.

1. **Components**: ALS; *media*, the content->CF bridge scoring **every** item from its media
   (its predicted factors against the users' ALS factors: a warm item with few interactions is
   scored like its look-and-sound-alikes, and a cold one too); item-kNN; content profiles (the
   fused vector and each modality block).
2. **Candidates** per user: the top items of every component, the cold items closest to the
   user's content profile and the most popular items (``candidates``), so warm and cold items
   enter one pool; seen items never do.
3. **Features** per (user, item): each component's raw score, its z-score within the user's row
   and its log-rank, the item's training popularity, whether it is cold or has media, the user's
   activity. The ``linear`` ranker reads the z-scores (plus popularity when ``popularity``).
4. **Ranker labels come from inside the training data, cross-fitted** (:mod:`recsys.models.crossfit`):
   each of ``folds`` folds holds out one interaction per user (the latest one when there are
   timestamps), the components are refitted on the rest, and the held-out interactions label the
   candidate lists of those components. All folds are pooled, so every labelled pair was scored
   by components that never saw it and that saw nearly all else, as the serving components
   (refitted on all training data) do. Validation interactions are never a label: under the
   ``published`` protocol val only chooses settings (:meth:`Hybrid.choose_on_validation`).
5. **Ranker**: ``linear`` (default; coordinate ascent on NDCG@20 over the z-scores) or LightGBM
   (``lambdarank``, ``binary``), see :mod:`recsys.models.ranker`.
6. **Cold-item exposure** (``cold_share``, ``cold_ceiling``, :mod:`recsys.models.exposure`): cold
   items the ranker finds good enough for the user fill that share of the top-20 slots, below the
   user's best warm items: the same number in every list (``cold_ceiling=1``), or on average, by
   one lift calibrated on training users' lists and clipped per list, so users whose cold
   candidates score well get more slots (up to ``cold_ceiling`` times the average). A share that
   cannot be given is reported (warning, ``exposure_``). Both are chosen on validation by the rule
   in :meth:`Hybrid.choose_on_validation`.

Items outside a user's candidate pool keep the ALS order below every candidate, so the full
ranking (and exact AUC) stays defined.

**Serving scores only the candidates.** ``recommend`` (lists for the API and batch jobs) retrieves
each component's top items and computes features for those pairs alone: z-scores from each user's
row mean and deviation in closed form (:mod:`recsys.models.candidate_scoring`), pair scores by
gathered dot products and sparse kNN rows; no score row over the catalog is built or sorted.
Lists equal the dense path's up to exact ties (tests/recsys/test_hybrid.py). Training rows,
``scores`` (full rankings for evaluation) and rankers that read within-row ranks (LightGBM) keep
the dense path.

Why this design (TikTok, recall@20 on **val**, every model learning from train only): ALS 0.1069;
media alone 0.1111; LambdaMART on cross-fitted labels 0.0892 with item popularity, 0.1052
without (it learns the training period's popularity, which drifts: train/test item counts
correlate 0.36); the linear ranker 0.1091 with popularity, 0.1134 without. Hence ``linear``
without popularity by default.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError
from recsys.models import exposure
from recsys.models.base import Recommender, pad_rows
from recsys.models.hybrid_explain import RankerExplanations
from recsys.models.hybrid_features import PairFeatures
from recsys.models.hybrid_serving import CandidateServing
from recsys.models.ranker import KINDS, Ranker

_log = logging.getLogger(__name__)

DEFAULT_CANDIDATES = {"als": 200, "media": 100, "itemknn": 50, "content": 50, "cold": 100, "popularity": 50}
COMPONENTS = ("als", "media", "itemknn", "content")
#: cold shares tried by :meth:`Hybrid.choose_on_validation`
COLD_SHARE_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
#: cold ceilings tried with each share: 1 (the same quota for every user) and 3 (adaptive; 2 and 4
#: did worse on TikTok's val, README "Cold-item exposure")
COLD_CEILING_GRID = (1, 3)


def _segment_recall(scores: np.ndarray, rel: sp.csr_matrix, keep: np.ndarray | None, k: int) -> np.ndarray:
    """(b,) recall@k of each row's top-k against ``rel`` restricted to items in ``keep`` (None: all);
    NaN for rows without relevant items there. ``scores`` (b, n) with seen items at -inf."""
    from recsys import metrics as M
    from recsys.models.base import top_n

    return M.recall_at_k(top_n(scores, k)[0], rel if keep is None else M.restrict_columns(rel, keep), k)


class Hybrid(PairFeatures, RankerExplanations, CandidateServing, Recommender):
    """ALS + media (content->CF bridge) + item-kNN + content, combined by a cross-fitted ranker.

    Parameters
    ----------
    content_blocks : tuple of str or None
        Feature blocks for content components; None = ``fused`` plus one block per modality.
    components : tuple of str or None
        Which of ``als``, ``media``, ``itemknn``, ``content`` feed candidates and features (None =
        all; ALS is always fitted: it gives users their factors and orders items outside the pool).
        For ablations: drop one and compare.
    candidates : dict, optional
        Candidates per user from each source (``als``, ``media``, ``itemknn``, ``content`` (per
        block), ``cold``: the cold items closest to the user's content profile, ``popularity``:
        the most popular training items); missing keys use ``DEFAULT_CANDIDATES``.
    ranker : {"linear", "lambdarank", "binary", "logistic"}
    ranker_params : dict, optional
        :class:`~recsys.models.ranker.Ranker` settings.
    folds : int
        Cross-fitting folds that build the ranker's training set (each refits the components).
    cold_simulation : float or "auto"
        Share of a fold's warm items whose fold-training interactions are dropped, so their
        held-out interactions label items that look new, as cold items do at serving time (the
        ranker must see cold labels to learn how to score new uploads). ``"auto"``: 0.2 in a fold
        where under 2% of the labels fall on items that are cold there anyway (on TikTok items with
        one interaction go cold in their fold naturally; on the demo none do), else 0.
    popularity : bool
        Give the ranker the item's training popularity. Off by default: learned from labels of
        the training period, it transfers badly to a later one when popularity drifts (TikTok val
        recall@20 0.1091 with, 0.1134 without).
    cold_share : float in [0, 1) or None
        Exposure policy for cold items (no training interactions: new uploads,
        :mod:`recsys.models.exposure`): cold items get ``floor(cold_share * 20)`` of the top-20
        slots, per list or on average (``cold_ceiling``); a lift of at most the user's own list
        spread, never above the user's top ``20 - Q`` warm candidates, where
        ``Q = min(cold_ceiling * floor(cold_share * 20), 19)`` is the most one list holds. None (or
        0) ranks them by the ranker alone. What the policy gives on up to 2,000 training users'
        lists is in ``exposure_``, with a warning when the share falls short.
        :meth:`choose_on_validation` replaces it by the share its documented rule picks.
    cold_ceiling : int >= 1
        1: every list gets the same quota, each cold item lifted by its list's whole bound. Above
        1: one lift (``cold_lift_``), calibrated so cold items fill ``cold_share`` of the slots on
        average over the training users' lists, is clipped per list by the bound, the cap and the
        ceiling ``Q``: users whose cold candidates the ranker scores well for them get more slots,
        the others fewer. :meth:`choose_on_validation` chooses it with the share.
    als_params, knn_params, bridge_params, content_params : dict, optional
        Settings of the components.
    seed : int
    """

    name = "hybrid"
    uses_features = True
    #: settings chosen on a validation part after fitting (``choose_on_validation``); the
    #: validation interactions are never a training label
    learns_from_validation = True
    supports_fold_in = True
    supports_new_items = True

    def __init__(
        self,
        content_blocks: tuple[str, ...] | None = None,
        components: tuple[str, ...] | None = None,
        candidates: dict | None = None,
        ranker: str = "linear",
        ranker_params: dict | None = None,
        folds: int = 3,
        cold_simulation: float | str = "auto",
        popularity: bool = False,
        cold_share: float | None = 0.25,
        cold_ceiling: int = 1,
        als_params: dict | None = None,
        knn_params: dict | None = None,
        bridge_params: dict | None = None,
        content_params: dict | None = None,
        seed: int = 0,
    ) -> None:
        self.content_blocks = content_blocks
        self.components = components
        self.candidates = candidates
        self.ranker = ranker
        self.ranker_params = ranker_params
        self.folds = folds
        self.cold_simulation = cold_simulation
        self.popularity = popularity
        self.cold_share = cold_share
        self.cold_ceiling = cold_ceiling
        self.als_params = als_params
        self.knn_params = knn_params
        self.bridge_params = bridge_params
        self.content_params = content_params
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def check_settings(self) -> None:
        if self.ranker not in KINDS:
            raise ConfigError(f"ranker must be one of {KINDS}, got {self.ranker!r}")
        unknown = set(self.candidates or {}) - set(DEFAULT_CANDIDATES)
        if unknown:
            raise ConfigError(f"unknown candidate sources {sorted(unknown)}; known: {sorted(DEFAULT_CANDIDATES)}")
        bad = set(self.components or ()) - set(COMPONENTS)
        if bad:
            raise ConfigError(f"unknown hybrid components {sorted(bad)}; known: {list(COMPONENTS)}")
        if self.cold_share is not None and not 0 <= self.cold_share < 1:
            raise ConfigError(f"cold_share must be in [0, 1) or None, got {self.cold_share}")
        if isinstance(self.cold_ceiling, bool) or not isinstance(self.cold_ceiling, (int, np.integer)) \
                or self.cold_ceiling < 1:
            raise ConfigError(f"cold_ceiling must be an integer >= 1, got {self.cold_ceiling!r}")
        if any(int(v) < 0 for v in (self.candidates or {}).values()):
            raise ConfigError("candidate counts must be >= 0")
        if int(self.folds) < 1:
            raise ConfigError(f"folds must be >= 1, got {self.folds}")
        if self.cold_simulation != "auto" and not 0 <= float(self.cold_simulation) < 1:
            raise ConfigError(f"cold_simulation must be in [0, 1) or 'auto', got {self.cold_simulation!r}")
        from recsys.models.als import ALS
        from recsys.models.bridge import Bridge
        from recsys.models.knn import ItemKNN

        for part, cls, settings in (("als_params", ALS, self.als_params), ("bridge_params", Bridge, self.bridge_params),
                                    ("knn_params", ItemKNN, self.knn_params)):
            try:
                cls(**(settings or {})).check_settings()
            except TypeError as e:
                raise ConfigError(f"{part}: {e}") from None
            except ConfigError as e:
                raise ConfigError(f"{part}: {e}") from None

    def _n_cand(self, source: str) -> int:
        if source in COMPONENTS and source not in self._active():
            return 0
        return int({**DEFAULT_CANDIDATES, **(self.candidates or {})}[source])

    def _active(self) -> tuple[str, ...]:
        return tuple(self.components) if self.components is not None else COMPONENTS

    def _fit(self, interactions, item_features) -> None:
        from recsys.models.crossfit import crossfit_folds

        self.block_names_ = self._blocks(item_features)
        xs, ys, groups = [], [], []
        moments = np.zeros((3, len(self._pair_names())))  # rows, sums, sums of squares of every feature
        self.simulated_cold_ = []
        for f, (fold_train, labels) in enumerate(crossfit_folds(interactions, int(self.folds), self.seed)):
            fold_train = self._simulate_cold(fold_train, labels, f)
            parts = self._fit_components(fold_train, item_features)
            x, y, g = self._training_rows(parts, fold_train, labels, moments)
            xs.append(x), ys.append(y), groups.append(g)
        if not ys or sum(int(y.sum()) for y in ys) == 0:
            raise DataError("no held-out training interaction is among its user's candidates; the ranker cannot "
                            "learn (too few interactions per user?)")
        x, y, g = np.concatenate(xs), np.concatenate(ys).astype(np.float32), np.concatenate(groups)
        self.ranker_model_ = Ranker(self.ranker, seed=self.seed, **(self.ranker_params or {})).fit(
            self._ranker_input(x), y, g)
        self.ranker_rows_, self.ranker_positives_, self.ranker_users_ = int(len(y)), int(y.sum()), int(len(g))
        n, total, squares = moments
        self.crossfit_feature_mean_ = total / np.maximum(n, 1)
        self.crossfit_feature_std_ = np.sqrt(np.maximum(squares / np.maximum(n, 1) - self.crossfit_feature_mean_ ** 2, 0))
        for k, v in vars(self._fit_components(interactions, item_features)).items():
            setattr(self, k, v)  # the serving components see all training data
        self._set_exposure(exposure.calibrate(self._calibration_lists(interactions), self.cold_share,
                                              ceiling=self.cold_ceiling))

    def _simulate_cold(self, fold_train: Interactions, labels: Interactions, fold: int) -> Interactions:
        """``fold_train`` without the interactions of a random share of its warm items (see
        ``cold_simulation``); records how many items were made cold in ``simulated_cold_``."""
        counts = fold_train.item_counts()
        share = self.cold_simulation
        if share == "auto":
            natural = float((counts[labels.matrix.indices] == 0).mean()) if labels.nnz else 0.0
            share = 0.2 if natural < 0.02 else 0.0
        warm = np.flatnonzero(counts > 0)
        n = int(round(float(share) * len(warm)))
        self.simulated_cold_.append(n)
        if n == 0:
            return fold_train
        drop = np.zeros(fold_train.n_items, dtype=bool)
        drop[np.random.default_rng([self.seed, fold]).choice(warm, size=n, replace=False)] = True
        return fold_train.subset(~drop[fold_train.matrix.indices])

    def _blocks(self, item_features) -> tuple[str, ...]:
        if self.content_blocks is not None:
            return tuple(self.content_blocks)
        names = ["fused"] if item_features.fused is not None else []
        seen = set()  # one component per modality: the first block of each mask
        for block, mask in item_features.block_masks.items():
            if mask not in seen:
                seen.add(mask)
                names.append(block)
        if not names:
            raise DataError("item features have no blocks")
        return tuple(names)

    def _fit_components(self, train: Interactions, item_features) -> SimpleNamespace:
        """Every component fitted on ``train``, with the item statistics the features read."""
        from recsys.models.als import ALS
        from recsys.models.bridge import Bridge
        from recsys.models.content import Content
        from recsys.models.knn import ItemKNN

        als = ALS(**(self.als_params or {})).fit(train)
        bp = {"block": "fused" if "fused" in self.block_names_ else self.block_names_[0], "seed": self.seed,
              "cold_share": None, **(self.bridge_params or {}), "predict_warm": True}
        counts = train.item_counts().astype(np.float32)
        active = self._active()
        return SimpleNamespace(
            als_=als,
            bridge_=Bridge(**bp).fit_from(als, train, item_features),
            itemknn_=ItemKNN(**(self.knn_params or {})).fit(train) if "itemknn" in active else None,
            contents_={b: Content(block=b, **(self.content_params or {})).fit(train, item_features)
                       for b in self.block_names_} if "content" in active else {},
            log_pop_=np.log1p(counts),
            popular_=np.argsort(-counts, kind="stable")[:max(self._n_cand("popularity"), 1)],
            cold_=(counts == 0).astype(np.float32),
        )

    # ------------------------------------------------------------------ exposure policy
    def _calibration_lists(self, train: Interactions, max_users: int = 2000) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ranker scores, is-cold) of the candidates of up to ``max_users`` training users."""
        lists = []
        for batch in self._user_batches(self._sample_users(train, max_users), self.n_items_):
            _, r, c, p = self._candidate_scores(batch, train.matrix[batch])
            bounds = np.searchsorted(r, np.arange(len(batch) + 1))
            lists += [(p[a:b], self.cold_[c[a:b]] > 0) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        return lists

    def _set_exposure(self, result: "exposure.Exposure") -> None:
        """Record what the exposure policy gives (``exposure_``) and warn when the share falls short."""
        self.exposure_ = result.to_json()
        self.cold_lift_ = result.lift
        if not result.reachable:
            _log.warning("hybrid cold_share=%s: cold items fill %.3f of the top-%d slots of training users' lists, "
                         "not %.3f (%s); the share is clipped to what the policy can give",
                         result.share, result.reached, result.k, result.slots / result.k, result.reason)

    def _exposed(self, p: np.ndarray, r: np.ndarray, c: np.ndarray, n_rows: int) -> np.ndarray:
        """(m,) candidate scores after the exposure policy with this model's share and calibrated lift."""
        return exposure.apply(p, r, self.cold_[c] > 0, self.cold_share, n_rows, ceiling=self.cold_ceiling,
                              lift=self.cold_lift_)

    def choose_on_validation(self, val: Interactions, k: int = 20, grid: tuple[float, ...] = COLD_SHARE_GRID,
                             max_loss: float = 0.05, ceilings: tuple[int, ...] = COLD_CEILING_GRID) -> dict:
        """Choose ``cold_share`` and ``cold_ceiling`` on a validation part (its interactions are never
        a training label).

        Rule: the smallest share in ``grid`` whose validation cold recall@k (cold held-out items in
        the shared list) is at least twice the best content-only component's with some ceiling in
        ``ceilings``, among the (share, ceiling) pairs that keep overall validation recall@k within
        ``max_loss`` (relative) of the ranker alone; at that share, the ceiling with the highest
        overall recall. If no pair reaches twice, the qualifying pair with the highest cold recall.
        Each pair is scored with the lift calibrated for it on training users' lists. With no
        validation interaction on a cold item the configured settings stay. Sets ``cold_share``,
        ``cold_ceiling``, ``cold_lift_`` and ``exposure_`` and returns the table behind the choice
        (also in ``exposure_choice_``; keys ``"share/ceiling"``).
        """
        self._check_fitted()
        if not val.same_maps(self.train_):
            raise DataError("val must share the training interactions' id maps (parts of one split)")
        users = np.flatnonzero(val.user_counts() > 0)
        cold_items = self.cold_ > 0
        cold_users = np.flatnonzero(np.bincount(np.repeat(np.arange(val.n_users), np.diff(val.matrix.indptr)),
                                                weights=cold_items[val.matrix.indices], minlength=val.n_users) > 0)
        if not len(cold_users):
            self.exposure_choice_ = {"rule": "no validation interaction on a cold item: configured share kept",
                                     "cold_share": self.cold_share, "cold_ceiling": self.cold_ceiling,
                                     "exposure": self.exposure_}
            return self.exposure_choice_
        lists = self._calibration_lists(self.train_)
        # share 0 lifts nothing: one ceiling stands for all
        pairs = sorted({(s, m if s > 0 else 1) for s in grid for m in ceilings})
        policy = {(s, m): exposure.calibrate(lists, s, k, ceiling=m) for s, m in pairs}
        overall = {sm: [] for sm in pairs}
        cold_rec = {sm: [] for sm in pairs}
        content_cold: dict[str, list] = {}
        names = self._source_names()
        for batch in self._user_batches(users, self.n_items_):
            rows = self.train_.matrix[batch]
            blocks, r, c, p = self._candidate_scores(batch, rows)
            rel = val.matrix[batch]
            for name, s in zip(names, blocks):
                if name.startswith("content_"):
                    content_cold.setdefault(name, []).append(_segment_recall(s, rel, cold_items, k))
            for sm in pairs:
                lifted = exposure.apply(p, r, self.cold_[c] > 0, sm[0], len(batch), k, ceiling=sm[1],
                                        lift=policy[sm].lift)
                full = self._full_scores(blocks[0], r, c, lifted, len(batch))
                overall[sm].append(_segment_recall(full, rel, None, k))
                cold_rec[sm].append(_segment_recall(full, rel, cold_items, k))
        mean = lambda parts: float(np.nanmean(np.concatenate(parts)))  # noqa: E731
        table = {sm: {"recall": mean(overall[sm]), "cold_recall": mean(cold_rec[sm]),
                      "train_cold_slots": policy[sm].reached, "lift": policy[sm].lift} for sm in pairs}
        best_content = max((mean(v) for v in content_cold.values()), default=0.0)
        base = table[(0.0, 1)]["recall"] if (0.0, 1) in table else max(t["recall"] for t in table.values())
        ok = [sm for sm in pairs if table[sm]["recall"] >= (1 - max_loss) * base]
        reach = [sm for sm in ok if table[sm]["cold_recall"] >= 2 * best_content]
        if reach:
            first = min(s for s, _ in reach)
            chosen = max((sm for sm in reach if sm[0] == first), key=lambda sm: table[sm]["recall"])
        else:
            chosen = max(ok, key=lambda sm: table[sm]["cold_recall"])
        self.cold_share = chosen[0] if chosen[0] > 0 else None
        self.cold_ceiling = chosen[1]
        self._set_exposure(policy[chosen])
        self.exposure_choice_ = {
            "rule": f"smallest share with val cold recall@{k} >= 2x the best content component's (ceilings "
                    f"{', '.join(map(str, ceilings))}; at that share the ceiling with the higher val recall), overall "
                    f"recall within {max_loss:.0%} of the ranker alone" + ("" if reach else " (none reached 2x: the "
                                                                          "highest cold recall among those kept)"),
            "cold_share": self.cold_share, "cold_ceiling": self.cold_ceiling, "best_content_cold_recall": best_content,
            "table": {f"{s}/{m}": v for (s, m), v in table.items()}, "exposure": self.exposure_,
        }
        return self.exposure_choice_

    def validation_choice(self) -> dict:
        """The exposure choice of the last :meth:`choose_on_validation` (``{}`` before one)."""
        return dict(getattr(self, "exposure_choice_", {}))

    # ------------------------------------------------------------------ scoring
    def _candidate_scores(self, users: np.ndarray, rows: sp.csr_matrix):
        """``(blocks, r, c, p)``: component score blocks, the candidate pairs (batch row ``r``,
        item ``c``, row-major) and their ranker scores before the cold-item boost."""
        blocks, cand = self._score_blocks(self, users, rows)
        r, c = np.nonzero(cand)
        p = np.zeros(0)
        if len(r):
            x = self._pair_features(self, blocks, rows, r, c)
            p = self.ranker_model_.predict(self._ranker_input(x))
        return blocks, r, c, p

    @staticmethod
    def _full_scores(als: np.ndarray, r: np.ndarray, c: np.ndarray, p: np.ndarray, b: int) -> np.ndarray:
        """(b, n_items): candidates at their ranker scores; the rest keep the ALS order inside
        (floor - 2, floor - 1), below the row's lowest candidate; seen items stay -inf."""
        floor = np.zeros(b)
        if len(r):
            np.minimum.at(floor, r, p)
        finite = np.isfinite(als)
        out = floor[:, None] - 2.0 + 1.0 / (1.0 + np.exp(-np.clip(np.where(finite, als, 0.0), -30, 30)))
        out[~finite] = -np.inf
        out[r, c] = p
        return out

    def _rank(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        blocks, r, c, p = self._candidate_scores(users, rows)
        # Candidates keep their raw ranker scores (a squashing function would tie high scores in
        # float32); seen items come last but stay rankable (filter_seen=False lists them).
        out = self._full_scores(blocks[0], r, c, self._exposed(p, r, c, len(users)), len(users))
        seen = ~np.isfinite(out)
        if seen.any():
            lowest = np.min(np.where(seen, np.inf, out), axis=1, keepdims=True)
            out = np.where(seen, np.broadcast_to(lowest - 1.0, out.shape), out)
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
                    "popular_", "crossfit_feature_mean_", "crossfit_feature_std_")

    def get_state(self) -> dict:
        state = super().get_state()
        state["block_names_"] = list(self.block_names_)
        state["ranker"] = self.ranker_model_.get_state()
        state["exposure_"] = self.exposure_
        state["cold_lift_"] = self.cold_lift_
        return state

    def _restore(self, state, item_features) -> None:
        # bundles written before the exposure report (they held a constant boost) have none; those
        # written before the calibrated lift (None) keep the fixed per-list quota they were fitted with
        self.exposure_ = state.get("exposure_", {})
        self.cold_lift_ = state.get("cold_lift_")
        self.block_names_ = tuple(self.block_names_)
        self.ranker_model_ = Ranker.from_state(state["ranker"])
        self.bridge_.als_ = self.als_  # one ALS, shared as at fit time
        self.bridge_.user_factors_ = self.als_.user_factors_

    def _grow_items(self, m: int, new_features) -> None:
        for _, comp in self._sources(self):
            if comp.n_items_ < self.n_items_:
                comp._grow(self.train_, new_features)
        if self.als_.n_items_ < self.n_items_:
            self.als_._grow(self.train_, None)
        self.log_pop_ = pad_rows(self.log_pop_, m)
        self.cold_ = pad_rows(self.cold_, m, np.ones(m, np.float32))  # popular_ keeps its items
