"""The hybrid's pair features: each component's score, its z-score within the user's row and its
log-rank, plus item and user columns, for (user, candidate) pairs of dense score blocks (the
training rows and full rankings of :class:`~recsys.models.hybrid.Hybrid`); the ranker's inputs
derived from them; the train/serve feature-shift check."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.data.interactions import Interactions
from recsys.models.base import Recommender, batch_size_for


def rank_in_row(s: np.ndarray, r: np.ndarray, v: np.ndarray) -> np.ndarray:
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


class PairFeatures:
    """Mixin of :class:`~recsys.models.hybrid.Hybrid`: candidate pools and pair features from dense
    component score blocks. Reads the hybrid's settings (``components``, ``candidates``,
    ``ranker``, ``popularity``) and fitted parts (``block_names_``, component models)."""

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
                     np.log1p(rank_in_row(s, r, v)).astype(np.float32)]
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
