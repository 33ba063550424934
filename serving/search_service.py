"""Search, query-by-clip and explanations on a loaded bundle, without HTTP: :class:`SearchService`.

It sits beside :class:`~serving.service.RecommendationService` and shares its lock, id matching,
media-root checks and feature extraction, so a registered item is searchable (by its media) at
once and a query clip is turned into vectors exactly like a registered one, but never added.

A search's relevant pool is cached (:class:`~serving.query_cache.QueryCache`, keyed by the index
version): a repeated query costs its user mix only (~0.2 ms instead of ~2 ms of CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError, MediaDecodeError
from serving.query_cache import QueryCache
from serving.search import DEFAULT_USER_WEIGHT, TextSearch, blend_pool, pool_size

BY_MEDIA = ("fused", "audio", "video")


class SearchService:
    """Words and clips in, items out.

    Parameters
    ----------
    service : RecommendationService
        The recommendation service of the same bundle (model, features, lock, media root).
    cache : QueryCache, optional
        Where relevant pools of queries are cached; default a new one of
        :data:`~serving.query_cache.DEFAULT_SIZE` entries (a server passes one cache to every
        service it swaps in, so its hit counts span reloads).
    """

    def __init__(self, service, cache: QueryCache | None = None) -> None:
        self.service = service
        self.cache = QueryCache() if cache is None else cache
        self._search: TextSearch | None = None

    @property
    def bundle(self):
        return self.service.bundle

    def warm(self) -> None:
        """Build the search index now (encoding every item's text takes ~1 s on 7k items) instead of
        on the first query, and load the libraries queries use, so a server that limits BLAS
        threads after start-up limits them too (a BLAS loaded later would spin 2 threads a call)."""
        import scipy.stats  # noqa: F401  (used by blend)

        if self.bundle.text is not None:
            with self.service._lock:
                self._text_search()

    def _text_search(self) -> TextSearch:
        """The search index, rebuilt when items were registered since it was built (call under the lock)."""
        state = self.bundle.text
        if state is None:
            raise ConfigError("this bundle has no text: run avrec features on a catalog with text columns "
                              "(title, tags, description) and fit with --features DIR")
        n = self.service.model.n_items_
        if self._search is None or self._search.n_items != n:
            feats = self.bundle.item_features
            self._search = TextSearch(state, feats if feats is not None and feats.n_items == n else None)
        return self._search

    # ------------------------------------------------------------------ words
    def search(self, query: str, user_id: Any = None, n: int = 10,
               user_weight: float = DEFAULT_USER_WEIGHT) -> dict[str, Any]:
        """Items for a text query, mixed with a user's recommendation scores when ``user_id`` is known.

        Raises
        ------
        QueryError   empty, too long or meaningless query (HTTP 422)
        ConfigError  the bundle has no text (HTTP 409)
        """
        s = self.service
        k = pool_size(n)
        with s._lock:
            ts = self._text_search()
        # Encoding the query and scoring relevance (most of a search's CPU) run outside the lock on
        # the index snapshot: a registration builds a new index object rather than changing this one,
        # so concurrent searches do not queue behind each other or behind recommendations.
        cand, rel = ts.pool(query, k, self.cache)
        with s._lock:
            if ts.n_items != s.model.n_items_:  # an item was registered meanwhile: use the new index
                ts = self._text_search()
                cand, rel = ts.pool(query, k, self.cache)
            u = -1 if user_id is None else s.user_index(user_id)
            known = u >= 0 and s.model.knows_user(u)
            model = s.model
            item_ids = s.interactions.item_ids
            # only the pooled candidates' user scores are read: pair scores, not a catalog-wide row
            user_scores = (lambda items: model.score(np.full(len(items), u), items)) if known else None
            res = blend_pool(cand, rel, n, user_scores, user_weight)
        ids = item_ids[res["idx"]].tolist()
        how = ts.matched_by(res["idx"])
        items = [{"item_id": i, "score": float(sc), "relevance": float(r),
                  "user_score": None if np.isnan(p) else float(p), "matched_by": m}
                 for i, sc, r, p, m in zip(ids, res["score"], res["relevance"], res["user"], how)]
        return {"query": query.strip(), "user_id": user_id, "known_user": bool(known),
                "user_weight": float(user_weight) if known else 0.0, "items": items}

    def tags(self, n: int = 5) -> dict[str, Any]:
        """Top-``n`` tags of every item: ``{"item_id", "rank", "tag", "score", "own"}`` columns as lists."""
        s = self.service
        with s._lock:
            ts = self._text_search()
            idx, vals, vocab = ts.tags(n)
            ids = s.interactions.item_ids
        own = self.bundle.text.tags
        cols: dict[str, list] = {"item_id": [], "rank": [], "tag": [], "score": [], "own": [], "source": []}
        how = ts.matched_by(np.arange(len(idx)))
        for i in range(len(idx)):
            mine = set(own[i]) if i < len(own) else set()
            for r, (t, v) in enumerate(zip(idx[i], vals[i])):
                if t < 0:
                    break
                cols["item_id"].append(ids[i])
                cols["rank"].append(r + 1)
                cols["tag"].append(vocab[t])
                cols["score"].append(float(v))
                cols["own"].append(vocab[t] in mine)
                cols["source"].append(how[i])
        return cols

    # ------------------------------------------------------------------ clips
    def search_by_media(self, path: str, by: str = "fused", n: int = 10) -> dict[str, Any]:
        """Items similar to a media file under the media root; the clip is NOT registered.

        Raises
        ------
        RegistrationDisabledError  no media root (HTTP 403)
        DataError          bad path (HTTP 400)
        MediaDecodeError   undecodable file (HTTP 422)
        ConfigError        the bundle cannot extract features, or lacks the ``by`` block (HTTP 409)
        """
        from features.extract import ExtractorConfig, extract_file
        from features.fusion import modality_vectors
        from recsys.explain import MODALITY_BLOCKS
        from recsys.models.base import top_n
        from recsys.models.content import l2_rows

        if by not in BY_MEDIA:
            raise ConfigError(f"by must be one of {BY_MEDIA}, got {by!r}")
        s, b = self.service, self.bundle
        full = s.resolve_media(path)
        if b.extractor is None or b.fusion is None or b.item_features is None:
            raise ConfigError(f"this bundle ({s.model.name}) has no extractor settings, fusion or features: "
                              "query by clip needs a bundle fitted with --features")
        try:  # slow part: outside the lock
            ff = extract_file(full, ExtractorConfig(**b.extractor))
        except MediaDecodeError as exc:
            raise MediaDecodeError(path, exc.reason.replace(str(full), path)) from None
        q = s._new_item_features("query", ff.blocks)
        with s._lock:
            feats = b.item_features
            if by == "fused":
                cols = _media_columns(b.fusion)  # a clip has no words: compare what it has
                items, vec = l2_rows(feats.fused[:, cols]), l2_rows(q.fused[:, cols])[0]
            else:
                names = [x for x in MODALITY_BLOCKS[by] if x in feats.blocks]
                if not names:
                    raise ConfigError(f"this bundle has no {by} block (blocks: {sorted(feats.blocks)})")
                if not q.mask_of(names[0])[0]:
                    raise MediaDecodeError(path, f"the clip has no {by} track")
                # standardised like similar_items' vectors; items without the modality are no candidates
                items, has = modality_vectors(feats, names, b.fusion)
                vec = modality_vectors(q, names, b.fusion, reference=feats)[0][0]
            sims = (items @ vec) if by == "fused" else np.where(has, items @ vec, -np.inf)
            idx, vals = top_n(sims[None, :].astype(np.float32), n)
            out = s._items_out(idx[0], vals[0])
        return {"path": path, "by": by, "has_audio": bool(ff.has_audio), "has_video": bool(ff.has_video),
                "items": out}

    # ------------------------------------------------------------------ explanations
    def explain_items(self, user_id: Any, items: list[dict[str, Any]], history: list[Any] | None = None) -> list[dict[str, Any]]:
        """``items`` (a recommendation answer's list) each with an ``explanation`` (recsys.explain).

        ``history``: an ad-hoc history's item ids (``POST /recommendations``); default the known
        user's training items.
        """
        from recsys.explain import explain

        s = self.service
        with s._lock:
            x = s.interactions
            n_items = s.model.n_items_
            u = s.user_index(user_id) if user_id is not None else -1
            if history is not None:
                idx = np.array([j for j in (s.item_index(i) for i in history) if j >= 0], dtype=np.int64)
                row = sp.csr_matrix((np.ones(len(idx), np.float32), (np.zeros(len(idx), int), idx)), shape=(1, n_items))
                row.sum_duplicates()
            elif 0 <= u < x.n_users:
                row = x.matrix[u]
                row = sp.csr_matrix((row.data, row.indices, row.indptr), shape=(1, n_items))
            else:
                row = sp.csr_matrix((1, n_items), dtype=np.float32)
            rec = np.array([s.item_index(it["item_id"]) for it in items], dtype=np.int64)
            feats = self.bundle.item_features
            feats = feats if feats is not None and feats.n_items == n_items else None
            expl = explain(s.model, row, rec, feats, user_idx=u if history is None else -1)
            ids = x.item_ids
        return [{**it, "explanation": e.to_dict(ids)} for it, e in zip(items, expl)]


def _media_columns(fusion) -> np.ndarray:
    """Columns of the fused vector that come from media blocks (all columns after a PCA fusion).

    A query clip's text block is missing (zero), so on the full vector every catalog item WITH
    text would lose a constant share of its cosine and items without text would be favoured.
    """
    prov = fusion.provenance()
    offsets = prov.get("offsets")
    if offsets is None:  # PCA mixes the blocks: no per-block columns
        return np.arange(fusion.dim)
    media = [np.arange(*offsets[b]) for b in fusion.blocks_ if fusion.block_masks_[b] != "text"]
    return np.concatenate(media) if media else np.arange(fusion.dim)
