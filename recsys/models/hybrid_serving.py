"""Candidate-only serving of the hybrid: lists from the candidate pairs alone (see
:mod:`recsys.models.candidate_scoring`), no score row over the catalog."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp



class CandidateServing:
    """Mixin of :class:`~recsys.models.hybrid.Hybrid`: ``recommend`` from candidate pairs."""

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
        from recsys.retrieval import current_index

        cache = self.__dict__.setdefault("_moment_cache", {})
        n_items = self.n_items_
        seen = sr, sc = cs.seen_pairs(rows)  # once per batch, for every component
        views, picks = [], []
        for name, comp in self._sources(self):
            # each embedding component's top-k from its index when one is attached (None: exact matmul)
            view = cs.source_for(comp, users, rows, cache, index=current_index(comp, "ip"), seen=seen)
            k = min(self._n_cand(name.split("_", 1)[0] if name.startswith("content_") else name), n_items)
            picks.append(cs.top_pairs(view.top_k(k)) if k else (np.zeros(0, np.int64),) * 2)
            views.append((name, view))
        n_cold, cold = self._n_cand("cold"), np.flatnonzero(self.cold_ > 0)
        if n_cold and len(cold):
            names = [n for n, _ in views]
            pick = views[names.index(next((n for n in names if n.startswith("content_")), names[-1]))][1]
            rr = np.repeat(np.arange(len(users)), len(cold))
            s = pick.pairs(rr, np.tile(cold, len(users))).reshape(len(users), len(cold))
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
        r, c = cs.union_pairs(picks, rows, n_items, seen=seen)
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
        p = self._exposed(p, r, c, len(users))
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
