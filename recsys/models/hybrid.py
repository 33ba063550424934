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
6. **Cold-item exposure** (``cold_share``, :mod:`recsys.models.exposure`): up to that share of each
   user's top-20 slots is reserved for cold items the ranker finds good enough for the user, below
   the user's best warm items; a share that cannot be given is reported (warning, ``exposure_``).
   Chosen on validation by the rule in :meth:`Hybrid.choose_on_validation`.

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
from recsys.models.base import Recommender, batch_size_for, pad_rows
from recsys.models.ranker import KINDS, Ranker

_log = logging.getLogger(__name__)

DEFAULT_CANDIDATES = {"als": 200, "media": 100, "itemknn": 50, "content": 50, "cold": 100, "popularity": 50}
COMPONENTS = ("als", "media", "itemknn", "content")
#: cold shares tried by :meth:`Hybrid.choose_on_validation`
COLD_SHARE_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


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


def _segment_recall(scores: np.ndarray, rel: sp.csr_matrix, keep: np.ndarray | None, k: int) -> np.ndarray:
    """(b,) recall@k of each row's top-k against ``rel`` restricted to items in ``keep`` (None: all);
    NaN for rows without relevant items there. ``scores`` (b, n) with seen items at -inf."""
    from recsys import metrics as M
    from recsys.models.base import top_n

    return M.recall_at_k(top_n(scores, k)[0], rel if keep is None else M.restrict_columns(rel, keep), k)


class Hybrid(Recommender):
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
        :mod:`recsys.models.exposure`): at most this share of each user's top-20 slots goes to cold
        items, each lifted at most by the user's own list spread and never above the user's top
        ``(1 - cold_share) * 20`` warm candidates. None (or 0) ranks them by the ranker alone. The
        share reached on up to 2,000 training users' lists is in ``exposure_``, with a warning when
        it falls short. :meth:`choose_on_validation` replaces it by the share its documented rule
        picks.
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
        self.als_params = als_params
        self.knn_params = knn_params
        self.bridge_params = bridge_params
        self.content_params = content_params
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def _validate(self, item_features) -> None:
        if item_features is None:
            raise DataError("the hybrid model needs item features: run `avrec features` and pass --features DIR")
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
        if any(int(v) < 0 for v in (self.candidates or {}).values()):
            raise ConfigError("candidate counts must be >= 0")
        if int(self.folds) < 1:
            raise ConfigError(f"folds must be >= 1, got {self.folds}")
        if self.cold_simulation != "auto" and not 0 <= float(self.cold_simulation) < 1:
            raise ConfigError(f"cold_simulation must be in [0, 1) or 'auto', got {self.cold_simulation!r}")

    def _n_cand(self, source: str) -> int:
        if source in COMPONENTS and source not in self._active():
            return 0
        return int({**DEFAULT_CANDIDATES, **(self.candidates or {})}[source])

    def _active(self) -> tuple[str, ...]:
        return tuple(self.components) if self.components is not None else COMPONENTS

    def _fit(self, interactions, item_features) -> None:
        from recsys.models.crossfit import crossfit_folds

        self._validate(item_features)
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
        self._set_exposure(exposure.calibrate(self._calibration_lists(interactions), self.cold_share))

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

    # ------------------------------------------------------------------ features
    def _sources(self, parts) -> list[tuple[str, Recommender]]:
        """(feature name, fitted component) in feature order (:meth:`_source_names`)."""
        fitted = {"als": parts.als_, "media": parts.bridge_, "itemknn": parts.itemknn_,
                  **{f"content_{b}": c for b, c in parts.contents_.items()}}
        return [(name, fitted[name]) for name in self._source_names()]

    @property
    def feature_names(self) -> list[str]:
        """Every pair feature, in column order (the ranker reads :attr:`ranker_feature_names`)."""
        self._check_fitted()
        return self._pair_names()

    def _pair_names(self) -> list[str]:
        """Columns of :meth:`_pair_features`: per source its score, z-score and log-rank, then the
        item and user columns."""
        names = [f"{s}{suffix}" for s in self._source_names() for suffix in ("", "_z", "_log_rank")]
        return names + ["item_log_pop", "item_is_cold", "has_media", "user_log_activity"]

    @property
    def ranker_feature_names(self) -> list[str]:
        """The ranker's inputs, in order (see :meth:`_ranker_input`)."""
        self._check_fitted()
        return self._ranker_names()

    def _ranker_names(self) -> list[str]:
        if self.ranker == "linear":
            # warm and cold items get their own weights: for a new item the CF scores say nothing
            # and its media everything; the cold flag's weight is a learned offset for new items
            srcs = self._source_names()
            names = [f"{s}_z" for s in srcs] + [f"{s}_z|cold" for s in srcs] + ["item_is_cold"]
            return names + (["item_log_pop"] if self.popularity else [])
        return [n for n in self._pair_names() if self.popularity or n != "item_log_pop"]

    def _ranker_input(self, x: np.ndarray) -> np.ndarray:
        """(m, n_ranker_features) from pair features ``x`` (columns as :attr:`feature_names`)."""
        names = self._pair_names()
        cold = x[:, names.index("item_is_cold")]
        cols = []
        for n in self._ranker_names():
            if n.endswith("|cold"):
                cols.append(x[:, names.index(n[:-5])] * cold)
            elif self.ranker == "linear" and n.endswith("_z"):
                cols.append(x[:, names.index(n)] * (1.0 - cold))
            else:
                cols.append(x[:, names.index(n)])
        return np.column_stack(cols).astype(np.float32)

    def _source_names(self) -> list[str]:
        active = self._active()
        names = ["als"] + (["media"] if "media" in active else []) + (["itemknn"] if "itemknn" in active else [])
        return names + ([f"content_{b}" for b in self.block_names_] if "content" in active else [])

    def _score_blocks(self, parts, users: np.ndarray, rows: sp.csr_matrix) -> tuple[list[np.ndarray], np.ndarray]:
        """Dense (b, n_items) scores of every component (seen items at -inf) and the candidate mask."""
        n_items = parts.als_.n_items_
        r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        blocks, cand = [], np.zeros((len(users), n_items), dtype=bool)
        for name, comp in self._sources(parts):
            s = comp.scores(users, rows)
            s[r, rows.indices] = -np.inf
            c = min(self._n_cand(name.split("_", 1)[0] if name.startswith("content_") else name), n_items)
            if c:
                np.put_along_axis(cand, np.argpartition(-s, c - 1, axis=1)[:, :c], True, axis=1)
            blocks.append(s)
        n_cold, cold = self._n_cand("cold"), np.flatnonzero(parts.cold_ > 0)
        if n_cold and len(cold):
            # the first content block's profile, else the media score, picks the cold candidates
            names = [n for n, _ in self._sources(parts)]
            pick = blocks[names.index(next((n for n in names if n.startswith("content_")), names[-1]))]
            c = min(n_cold, len(cold))
            top = np.argpartition(-pick[:, cold], c - 1, axis=1)[:, :c] if c < len(cold) else \
                np.broadcast_to(np.arange(len(cold)), (len(users), len(cold)))
            np.put_along_axis(cand, cold[top], True, axis=1)
        n_pop = min(self._n_cand("popularity"), n_items)
        if n_pop:
            cand[:, parts.popular_[:n_pop]] = True
        cand[r, rows.indices] = False  # seen items are never candidates
        return blocks, cand

    @staticmethod
    def _pair_features(parts, blocks: list[np.ndarray], rows: sp.csr_matrix, r: np.ndarray,
                       c: np.ndarray) -> np.ndarray:
        """(m, n_features) float32 for pairs (batch row r, item c), columns as :attr:`feature_names`."""
        activity = np.log1p(np.diff(rows.indptr)).astype(np.float32)
        cols = []
        for s in blocks:
            finite = np.where(np.isfinite(s), s, np.nan)
            mu, sd = np.nanmean(finite, axis=1), np.nanstd(finite, axis=1)
            v = s[r, c]
            cols += [v, np.divide(v - mu[r], sd[r], out=np.zeros_like(v), where=sd[r] > 1e-12),
                     np.log1p(_rank_in_row(s, r, v)).astype(np.float32)]
        cols += [parts.log_pop_[c], parts.cold_[c], parts.bridge_.has_media_[c], activity[r]]
        return np.column_stack(cols).astype(np.float32)

    def _sample_users(self, x: Interactions, max_users: int) -> np.ndarray:
        """Users with interactions in ``x``, at most ``max_users`` of them (seeded sample, sorted)."""
        users = np.flatnonzero(x.user_counts() > 0)
        if len(users) > max_users:
            users = np.sort(np.random.default_rng(self.seed).choice(users, size=max_users, replace=False))
        return users

    def _user_batches(self, users: np.ndarray, n_items: int):
        """Consecutive slices of ``users`` small enough for the dense (batch, n_items) blocks."""
        bs = batch_size_for(n_items, 256)
        for start in range(0, len(users), bs):
            yield users[start : start + bs]

    def _training_rows(self, parts, train: Interactions, labels: Interactions, moments: np.ndarray):
        """Ranker rows of one fold: ``(x, y, group sizes)``; lists without a held-out item among the
        candidates teach nothing and are left out of ``x``. Every candidate row, kept or not, adds
        to ``moments`` (3, n_features): row count, sums and sums of squares (for
        :meth:`feature_shift`), so the fold's rows need not be held in memory."""
        users = np.flatnonzero(labels.user_counts() > 0)
        xs, ys, groups = [], [], []
        for batch in self._user_batches(users, train.n_items):
            rows = train.matrix[batch]
            blocks, cand = self._score_blocks(parts, batch, rows)
            pos = labels.matrix[batch]
            label = np.zeros(cand.shape, dtype=bool)
            label[np.repeat(np.arange(len(batch)), np.diff(pos.indptr)), pos.indices] = True
            r, c = np.nonzero(cand)  # row-major: each user's rows are consecutive
            if not len(r):
                continue
            x = self._pair_features(parts, blocks, rows, r, c)
            x64 = x.astype(np.float64)
            moments += [np.full(x.shape[1], len(x)), x64.sum(axis=0), (x64 * x64).sum(axis=0)]
            keep = (label & cand).any(axis=1)[r]
            xs.append(x[keep]), ys.append(label[r, c][keep])
            groups.append(np.bincount(r[keep], minlength=len(batch))[(label & cand).any(axis=1)])
        if not xs:
            return np.zeros((0, moments.shape[1]), np.float32), np.zeros(0, bool), np.zeros(0, np.int64)
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)

    def feature_shift(self, interactions: Interactions | None = None, max_users: int = 2000) -> dict[str, float]:
        """Standardised mean difference of every feature between the cross-fitted training rows and
        the rows the serving components produce for (up to ``max_users``) training users' lists:
        ``(serving mean - training mean) / training std``. Near 0 means the ranker is served the
        feature distribution it learned from."""
        self._check_fitted()
        x = interactions or self.train_
        rows = []
        for batch in self._user_batches(self._sample_users(x, max_users), self.n_items_):
            m = x.matrix[batch]
            blocks, cand = self._score_blocks(self, batch, m)
            r, c = np.nonzero(cand)
            rows.append(self._pair_features(self, blocks, m, r, c))
        serving = np.concatenate(rows)
        sd = np.where(self.crossfit_feature_std_ > 1e-12, self.crossfit_feature_std_, 1.0)
        smd = (serving.mean(axis=0) - self.crossfit_feature_mean_) / sd
        return dict(zip(self.feature_names, map(float, smd)))

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
        if not result.reachable:
            _log.warning("hybrid cold_share=%s: cold items fill %.3f of the top-%d slots of training users' lists, "
                         "not %.3f (%s); the share is clipped to what the policy can give",
                         result.share, result.reached, result.k, result.slots / result.k, result.reason)

    def choose_on_validation(self, val: Interactions, k: int = 20, grid: tuple[float, ...] = COLD_SHARE_GRID,
                             max_loss: float = 0.05) -> dict:
        """Choose ``cold_share`` on a validation part (its interactions are never a training label).

        Rule: the smallest share in ``grid`` whose validation cold recall@k (cold held-out items in
        the shared list) is at least twice the best content-only component's, among the shares that
        keep overall validation recall@k within ``max_loss`` (relative) of the ranker alone; if none
        reaches twice, the qualifying share with the highest cold recall. With no validation
        interaction on a cold item the configured share stays. Sets ``cold_share`` and ``exposure_``
        and returns the table behind the choice (also in ``exposure_choice_``).
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
                                     "cold_share": self.cold_share, "exposure": self.exposure_}
            return self.exposure_choice_
        lists = self._calibration_lists(self.train_)
        shares = sorted(set(grid))
        policy = {s: exposure.calibrate(lists, s, k) for s in shares}
        overall = {s: [] for s in shares}
        cold_rec = {s: [] for s in shares}
        content_cold: dict[str, list] = {}
        names = self._source_names()
        for batch in self._user_batches(users, self.n_items_):
            rows = self.train_.matrix[batch]
            blocks, r, c, p = self._candidate_scores(batch, rows)
            rel = val.matrix[batch]
            for name, s in zip(names, blocks):
                if name.startswith("content_"):
                    content_cold.setdefault(name, []).append(_segment_recall(s, rel, cold_items, k))
            for s in shares:
                full = self._full_scores(blocks[0], r, c, exposure.apply(p, r, self.cold_[c] > 0, s, len(batch), k),
                                         len(batch))
                overall[s].append(_segment_recall(full, rel, None, k))
                cold_rec[s].append(_segment_recall(full, rel, cold_items, k))
        mean = lambda parts: float(np.nanmean(np.concatenate(parts)))  # noqa: E731
        table = {s: {"recall": mean(overall[s]), "cold_recall": mean(cold_rec[s]),
                     "train_cold_slots": policy[s].reached} for s in shares}
        best_content = max((mean(v) for v in content_cold.values()), default=0.0)
        base = table[0.0]["recall"] if 0.0 in table else max(t["recall"] for t in table.values())
        ok = [s for s in shares if table[s]["recall"] >= (1 - max_loss) * base]
        reach = [s for s in ok if table[s]["cold_recall"] >= 2 * best_content]
        chosen = reach[0] if reach else max(ok, key=lambda s: table[s]["cold_recall"])
        self.cold_share = chosen if chosen > 0 else None
        self._set_exposure(policy[chosen])
        self.exposure_choice_ = {
            "rule": f"smallest share with val cold recall@{k} >= 2x the best content component's, overall recall "
                    f"within {max_loss:.0%} of the ranker alone" + ("" if reach else " (none reached 2x: the highest "
                                                                            "cold recall among those kept)"),
            "cold_share": self.cold_share, "best_content_cold_recall": best_content,
            "table": {str(s): v for s, v in table.items()}, "exposure": self.exposure_,
        }
        return self.exposure_choice_

    def validation_choice(self) -> dict:
        """The exposure choice of the last :meth:`choose_on_validation` (``{}`` before one)."""
        return dict(getattr(self, "exposure_choice_", {}))

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
        delta = dict(zip(c.tolist(), (exposure.apply(p, r, self.cold_[c] > 0, self.cold_share, len(users)) - p).tolist()))
        return np.array([delta.get(int(i), 0.0) for i in items])

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

    # ------------------------------------------------------------------ candidate-only serving
    def serves_from_candidates(self) -> bool:
        """Whether :meth:`recommend` scores only the candidate pairs (no dense rows): the ranker
        must not read within-row ranks, which only a full row gives (the ``linear`` ranker)."""
        self._check_fitted()
        return not any(n.endswith("_log_rank") for n in self._ranker_names())

    def _pool(self, users: np.ndarray, rows: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(r, c, p)``: the candidate pairs of a batch (row-major) and their final scores (ranker,
        then the exposure policy), from candidate-only component views
        (:mod:`recsys.models.candidate_scoring`): the same candidates and scores as the dense
        :meth:`_candidate_scores`, except that item-kNN retrieves only items it scores above 0."""
        from recsys.models import candidate_scoring as cs

        cache = self.__dict__.setdefault("_moment_cache", {})
        n_items = self.n_items_
        views, picks = [], []
        for name, comp in self._sources(self):
            view = cs.source_for(comp, users, rows, cache)
            k = min(self._n_cand(name.split("_", 1)[0] if name.startswith("content_") else name), n_items)
            picks.append(cs.top_pairs(view.top_k(k)) if k else (np.zeros(0, np.int64),) * 2)
            views.append((name, view))
        n_cold, cold = self._n_cand("cold"), np.flatnonzero(self.cold_ > 0)
        if n_cold and len(cold):
            names = [n for n, _ in views]
            pick = views[names.index(next((n for n in names if n.startswith("content_")), names[-1]))][1]
            rr = np.repeat(np.arange(len(users)), len(cold))
            s = pick.pairs(rr, np.tile(cold, len(users))).reshape(len(users), len(cold))
            sr, sc = cs.seen_pairs(rows)
            pos = np.searchsorted(cold, sc)
            hit = (pos < len(cold)) & (cold[np.minimum(pos, len(cold) - 1)] == sc)
            s[sr[hit], pos[hit]] = -np.inf
            c = min(n_cold, len(cold))
            top = np.argpartition(-s, c - 1, axis=1)[:, :c] if c < len(cold) else \
                np.broadcast_to(np.arange(len(cold)), (len(users), len(cold)))
            picks.append((np.repeat(np.arange(len(users)), top.shape[1]), cold[top].ravel()))
        pop = self.popular_[:min(self._n_cand("popularity"), n_items)]
        if len(pop):
            picks.append((np.repeat(np.arange(len(users)), len(pop)), np.tile(pop, len(users))))
        r, c = cs.union_pairs(picks, rows, n_items)
        if not len(r):
            return r, c, np.zeros(0, np.float32)
        activity = np.log1p(np.diff(rows.indptr)).astype(np.float32)
        cols = []
        for _, view in views:
            v, st = view.pairs(r, c), view.row_stats()
            sd = st.std[r]
            z = np.divide(v - st.mean[r], sd, out=np.zeros_like(v), where=sd > 1e-12)
            cols += [v, z, np.full(len(r), np.nan, np.float32)]  # log-ranks: not read (see serves_from_candidates)
        cols += [self.log_pop_[c], self.cold_[c], self.bridge_.has_media_[c], activity[r]]
        x = np.column_stack(cols).astype(np.float32)
        p = self.ranker_model_.predict(self._ranker_input(x))
        p = exposure.apply(p, r, self.cold_[c] > 0, self.cold_share, len(users))
        return r, c, np.asarray(p, dtype=np.float32)

    def recommend(self, user_idx, user_items=None, n: int = 10, filter_seen: bool = True, items=None,
                  batch_size: int | None = None):
        """Top-``n`` items (see :meth:`Recommender.recommend`). With seen items filtered and no
        ``items`` restriction, only the candidate pairs are scored (:meth:`_pool`); the lists are
        those of the dense path. Other calls, users unknown without a history, and users with
        fewer than ``n`` candidates take the dense path."""
        self._check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        if not (filter_seen and items is None and n >= 1 and self.serves_from_candidates()):
            return super().recommend(user_idx, user_items, n, filter_seen, items, batch_size)
        rows = self._user_rows(users, user_items)
        known = (users >= 0) & (users < self.n_users_)
        if (~known & (np.diff(rows.indptr) == 0)).any():
            return super().recommend(user_idx, user_items, n, filter_seen, items, batch_size)
        out_idx = np.empty((len(users), n), dtype=np.int64)
        out_val = np.empty((len(users), n), dtype=np.float32)
        bs = batch_size or 256
        for start in range(0, len(users), bs):
            sl = slice(start, start + bs)
            block = rows if len(users) <= bs else rows[sl]
            b = min(bs, len(users) - start)
            r, c, p = self._pool(users[sl], block)
            counts = np.bincount(r, minlength=b)
            if (counts < n).any():  # too few candidates: the dense path fills from ALS order
                idx, val = super().recommend(users[sl], block, n, filter_seen, None, batch_size)
            else:
                # best first within each row; ties by item index, as top_n orders them
                order = np.lexsort((c, -p, r))
                first = np.searchsorted(r[order], np.arange(b))
                take = order[(first[:, None] + np.arange(n)[None, :]).ravel()]
                idx, val = c[take].reshape(b, n), p[take].reshape(b, n)
            out_idx[sl], out_val[sl] = idx, val
        single = np.ndim(user_idx) == 0
        return (out_idx[0], out_val[0]) if single else (out_idx, out_val)

    def _rank(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        blocks, r, c, p = self._candidate_scores(users, rows)
        # Candidates keep their raw ranker scores (a squashing function would tie high scores in
        # float32); seen items come last but stay rankable (filter_seen=False lists them).
        out = self._full_scores(blocks[0], r, c, exposure.apply(p, r, self.cold_[c] > 0, self.cold_share, len(users)),
                                len(users))
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
        return state

    def _restore(self, state, item_features) -> None:
        # bundles written before the exposure report (they held a constant boost) have none
        self.exposure_ = state.get("exposure_", {})
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
