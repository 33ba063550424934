"""Search by words over a catalog: relevance, the per-user mix, predicted tags.

**Relevance** of a query to item i (:meth:`TextSearch.relevance`) is a cosine in the encoder's text
space (:mod:`features.text`)::

    rel_i = a_i * cos(q, words_i) + (1 - a_i) * cos(q, media_i)

``words_i`` is the item's own text; ``media_i`` its media projected into the text space
(:mod:`training.text_projection`); ``a_i`` is ``text_weight`` (default 0.8) for an item with both,
1 for text only, 0 for media only. With the lexical encoder the first cosine is exact TF-IDF
(words + character n-grams) and the second is the cosine with the LSA reconstruction of the
projection, so both are on one scale. An item with neither text nor media cannot be found.

**With a user** (:func:`blend`): the ``pool`` most relevant items (default max(100, 10 n), relevance
> 0) are re-ordered by::

    score = (1 - user_weight) * rel / max(rel over the pool) + user_weight * pct_i

where ``pct_i`` in (0, 1] is the percentile rank of the user's recommendation score among the pool
(ranks, because recommendation scores have model-specific scales: ALS dot products, ranker
margins). ``user_weight`` (default 0.3, 0 = relevance only, 1 = the user's order among relevant
items) is a request parameter. Two users typing the same words get different orders; nothing
irrelevant enters through the user term.

**Queries** are refused (:class:`~recsys.errors.QueryError`, HTTP 422) when empty, longer than
:data:`MAX_QUERY_CHARS`, without any letter or digit, or (lexical) with no word or character
n-gram the catalog's text knows.

**Tags** (:meth:`TextSearch.tags`): the relevance of each vocabulary tag, taken as a query, to each
item; an item's top tags are the best of those. Items with text score their own tags highest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recsys.errors import QueryError

MAX_QUERY_CHARS = 500
DEFAULT_USER_WEIGHT = 0.3
MATCHED_BY = ("none", "media", "text", "text+media")


def check_query(query: str | None) -> str:
    """The stripped query; raises :class:`QueryError` when it is empty, too long or has no words."""
    from features.text import has_words

    q = (query or "").strip()
    if not q:
        raise QueryError("the query is empty: type some words")
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"the query has {len(q)} characters; at most {MAX_QUERY_CHARS} are allowed")
    if not has_words(q):
        raise QueryError(f"the query {q!r} has no letter or digit: nothing to search for")
    return q


class TextSearch:
    """Relevance of text queries to every item of a catalog.

    Parameters
    ----------
    state : serving.text_state.TextState
        Aligned to the rows of ``item_features`` (its first rows when items were registered since).
    item_features : ItemFeatures, optional
        Media blocks for the projection (every row, registered items included).
    """

    def __init__(self, state, item_features=None) -> None:
        self.state = state
        self.encoder = state.encoder
        rows = self.encoder.rows(state.texts)
        # transposed once: a query is (1, V) x (V, n), the fast direction for CSR
        self.words_t_ = rows.T.tocsr() if sp.issparse(rows) else np.ascontiguousarray(rows.T)
        n = len(state.texts)
        media = np.zeros((n, self.encoder.dim), np.float32)
        has_media = np.zeros(n, bool)
        if item_features is not None and state.projection is not None:
            media, has_media = state.projection.predict(item_features)
        self.n_items = max(n, media.shape[0])
        self.has_text_ = np.zeros(self.n_items, bool)
        self.has_text_[:n] = state.has_text
        self.media_ = media
        self.has_media_ = has_media
        w = float(state.text_weight)
        self.a_ = np.where(self.has_text_ & has_media, w, np.where(self.has_text_, 1.0, 0.0)).astype(np.float32)
        self.findable_ = self.has_text_ | has_media

    def matched_by(self, idx: np.ndarray) -> list[str]:
        """For items ``idx``: ``"text"``, ``"media"`` or ``"text+media"``: what their relevance came from."""
        code = self.has_text_[idx].astype(int) * 2 + self.has_media_[idx].astype(int)
        return [MATCHED_BY[c] for c in code]

    def query_rows(self, queries: Sequence[str]):
        """Encoded queries; raises :class:`QueryError` for one the catalog's vocabulary does not cover."""
        q = self.encoder.rows([check_query(t) for t in queries])
        norms = np.asarray(abs(q).sum(axis=1)).ravel() if sp.issparse(q) else np.abs(q).sum(axis=1)
        if (norms == 0).any():
            bad = queries[int(np.flatnonzero(norms == 0)[0])]
            raise QueryError(f"no word of the query {bad!r} occurs in this catalog's text; try other words")
        return q

    def relevance(self, queries: Sequence[str]) -> np.ndarray:
        """(m, n_items) float32 relevance (module docstring); ``-inf`` for items that cannot be found."""
        q = self.query_rows(queries)
        words = q @ self.words_t_
        words = words.toarray() if sp.issparse(words) else np.asarray(words)
        rel = np.zeros((len(queries), self.n_items), np.float32)
        rel[:, : words.shape[1]] = words
        rel *= self.a_
        rel += (1.0 - self.a_) * (self.encoder.coords(q) @ self.media_.T)
        rel[:, ~self.findable_] = -np.inf
        return rel

    def tags(self, n: int = 5, batch: int = 64) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Top ``n`` tags of every item.

        Returns
        -------
        idx : (n_items, n) int64
            Index into ``vocabulary`` (-1 where fewer tags have a positive score).
        scores : (n_items, n) float32
        vocabulary : list of str
        """
        from recsys.models.base import top_n

        vocab = list(self.state.vocabulary)
        if not vocab:
            raise QueryError("this catalog has no tag vocabulary (no tags column and no text)")
        known = [t for t in vocab if self.encoder.rows([t]).sum() != 0]
        rel = np.concatenate([self.relevance(known[s:s + batch]) for s in range(0, len(known), batch)])
        rel = rel.T.copy()  # (n_items, n_tags)
        rel[~(rel > 0)] = -np.inf  # no positive evidence, no tag
        idx, vals = top_n(rel, n)
        return idx, vals, known


def blend(relevance: np.ndarray, n: int, user_scores=None,
          user_weight: float = DEFAULT_USER_WEIGHT, pool: int | None = None) -> dict[str, np.ndarray]:
    """Top-``n`` items by relevance, re-ordered by a user's scores when given (module docstring).

    Parameters
    ----------
    relevance : (n_items,) float32
    n : int
    user_scores : (n_items,) float, or a function of (k,) item indices -> (k,) scores, optional
        The user's recommendation scores (any scale; ``-inf`` allowed). Only the pooled items'
        scores are read, so a function lets the caller score just those (serving does).
    user_weight : float in [0, 1]
    pool : int, optional
        Relevant items re-ordered (default max(100, 10 n)).

    Returns
    -------
    dict with ``idx`` (k,) int64, ``score``, ``relevance`` and ``user`` (percentile, NaN without user)
    (k,) float32; k <= n (only items with relevance > 0).
    """
    from scipy.stats import rankdata

    from recsys.errors import ConfigError
    from recsys.models.base import top_n

    if not 0.0 <= user_weight <= 1.0:
        raise ConfigError(f"user_weight must be in [0, 1], got {user_weight}")
    rel = np.where(relevance > 0, relevance, -np.inf).astype(np.float32)
    k = max(100, 10 * n) if pool is None else max(n, int(pool))
    cand, r = top_n(rel[None, :], k if user_scores is not None else n)
    keep = cand[0] >= 0
    cand, r = cand[0][keep], r[0][keep]
    if user_scores is None or len(cand) == 0:
        return {"idx": cand[:n], "score": r[:n], "relevance": r[:n], "user": np.full(min(n, len(cand)), np.nan, np.float32)}
    u = np.asarray(user_scores(cand) if callable(user_scores) else np.asarray(user_scores)[cand], np.float64)
    u = np.where(np.isnan(u), -np.inf, u)
    pct = (rankdata(u, method="average") / len(u)).astype(np.float32)
    score = (1.0 - user_weight) * r / r.max() + user_weight * pct
    order = np.lexsort((cand, -score))[:n]  # ties: lower item index first, as top_n does
    return {"idx": cand[order], "score": score[order].astype(np.float32), "relevance": r[order], "user": pct[order]}
