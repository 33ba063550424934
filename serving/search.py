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
> 0; without a user the list is the pool's first n) are re-ordered by::

    score = (1 - user_weight) * rel / max(rel over the pool) + user_weight * pct_i

where ``pct_i`` in (0, 1] is the percentile rank of the user's recommendation score among the pool
(ranks, because recommendation scores have model-specific scales: ALS dot products, ranker
margins). ``user_weight`` (default 0.3, 0 = relevance only, 1 = the user's order among relevant
items) is a request parameter. Two users typing the same words get different orders; nothing
irrelevant enters through the user term.

**Queries** are refused (:class:`~recsys.errors.QueryError`, HTTP 422) when empty, longer than
:data:`MAX_QUERY_CHARS`, without any letter or digit, or (lexical) with no word or character
n-gram the catalog's text knows.

**Caching.** The pool depends only on the query and the index, so serving caches it
(:meth:`TextSearch.pool` with a :class:`~serving.query_cache.QueryCache`), keyed by the index's
``version``: a registration or a reload builds a new index, whose version no cached entry has.

**Tags** (:meth:`TextSearch.tags`): the relevance of each vocabulary tag, taken as a query, to each
item; an item's top tags are the best of those. Items with text score their own tags highest.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recsys.errors import ConfigError, QueryError

MAX_QUERY_CHARS = 500
DEFAULT_USER_WEIGHT = 0.3
MATCHED_BY = ("none", "media", "text", "text+media")

# every index built in this process gets a new number: query-cache keys start with it
_versions = itertools.count(1)


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
        #: identifies this index (its items and their vectors) in a query cache
        self.version = next(_versions)

    def matched_by(self, idx: np.ndarray) -> list[str]:
        """For items ``idx``: ``"text"``, ``"media"`` or ``"text+media"``: what their relevance came from."""
        code = self.has_text_[idx].astype(int) * 2 + self.has_media_[idx].astype(int)
        return [MATCHED_BY[c] for c in code]

    def query_rows(self, queries: Sequence[str]):
        """Encoded queries; raises :class:`QueryError` for one the catalog's vocabulary does not cover."""
        q = self.encoder.rows([check_query(t) for t in queries])
        norms = np.asarray(abs(q).sum(axis=1)).ravel() if sp.issparse(q) else np.abs(q).sum(axis=1)
        if (norms == 0).any():
            raise _unknown_words(queries[int(np.flatnonzero(norms == 0)[0])])
        return q

    def relevance(self, queries: Sequence[str]) -> np.ndarray:
        """(m, n_items) float32 relevance (module docstring); ``-inf`` for items that cannot be found."""
        if len(queries) == 1 and hasattr(self.encoder, "terms") and sp.issparse(self.words_t_):
            return self._relevance_one(queries[0])[None, :]
        q = self.query_rows(queries)
        words = q @ self.words_t_
        words = words.toarray() if sp.issparse(words) else np.asarray(words)
        return self._mix(words, self.encoder.coords(q))

    def _relevance_one(self, query: str) -> np.ndarray:
        """:meth:`relevance` of one lexical query, (n_items,) float32, without sparse-matrix products.

        A query has a few dozen n-grams; its word cosines are the sum of their item rows in the
        transposed TF-IDF matrix (gathered and summed with one ``bincount``), and its dense
        coordinates the weighted sum of their SVD component rows. Equal to the general path
        (tested); about a tenth of scipy's per-product overhead for one row.
        """
        cols, w = self.encoder.terms(check_query(query))
        if len(cols) == 0:
            raise _unknown_words(query)
        t = self.words_t_
        starts, ends = t.indptr[cols], t.indptr[cols + 1]
        lens = ends - starts
        # positions of every stored entry of the query's rows: starts[j], .., ends[j] - 1 for each j
        pos = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
        words = np.bincount(t.indices[pos], weights=t.data[pos] * np.repeat(w, lens), minlength=t.shape[1])
        return self._mix(words[None, :], (w @ self.encoder.components_t_[cols])[None, :])[0]

    def _mix(self, words: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """(m, n_items) float32 relevance from word cosines (m, n_text_items) and dense query
        coordinates (m, dim): ``a * words + (1 - a) * media . coords``, ``-inf`` where nothing is findable."""
        rel = np.zeros((len(words), self.n_items), np.float32)
        rel[:, : words.shape[1]] = words
        rel *= self.a_
        rel += (1.0 - self.a_) * (coords @ self.media_.T)
        rel[:, ~self.findable_] = -np.inf
        return rel

    def pool(self, query: str, k: int, cache=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most relevant items of a query (relevance > 0), best first; cached in ``cache``.

        Parameters
        ----------
        query : str
        k : int
            Pool size (:func:`pool_size`).
        cache : serving.query_cache.QueryCache, optional
            Looked up under ``(version, stripped query, k)`` before anything is computed.

        Returns
        -------
        idx : (m,) int64, read-only
        relevance : (m,) float32, read-only
            m <= k: only items with positive relevance.

        Raises
        ------
        QueryError
            Empty, overlong or meaningless query (never cached: refused again each time).
        """
        q = check_query(query)
        key = (self.version, q, int(k))
        if cache is not None:
            hit = cache.get(key)
            if hit is not None:
                return hit
        out = relevant_pool(self.relevance([q])[0], k)
        if cache is not None:
            cache.put(key, out)
        return out

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


def _unknown_words(query: str) -> QueryError:
    return QueryError(f"no word of the query {query!r} occurs in this catalog's text; try other words")


def pool_size(n: int, pool: int | None = None) -> int:
    """Items a list of ``n`` is chosen from: ``pool`` when given (at least n), else max(100, 10 n)."""
    return max(100, 10 * n) if pool is None else max(n, int(pool))


def relevant_pool(relevance: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items of highest positive relevance, best first (ties: lower index first).

    Returns read-only ``(idx (m,) int64, relevance (m,) float32)``, m <= k, so a cached pool
    cannot be changed by a caller.
    """
    from recsys.models.base import top_n

    rel = np.where(relevance > 0, relevance, -np.inf).astype(np.float32)
    idx, r = top_n(rel[None, :], k)
    keep = idx[0] >= 0
    idx, r = idx[0][keep], r[0][keep]
    idx.flags.writeable = False
    r.flags.writeable = False
    return idx, r


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` ascending, ties sharing their mean rank.

    Equal to ``scipy.stats.rankdata(x, method="average")`` (tested) at a tenth of its cost on the
    ~100 pooled scores of a search (scipy's argument handling is ~0.2 ms a call).

    Parameters
    ----------
    x : (m,) float, no NaN

    Returns
    -------
    (m,) float64
    """
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.empty(len(xs), bool)
    new[:1] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(xs))
    ranks = np.empty(len(xs), np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(new) - 1]  # mean of ranks starts+1 .. ends
    return ranks


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
    _check_weight(user_weight)
    cand, r = relevant_pool(relevance, pool_size(n, pool))
    return blend_pool(cand, r, n, user_scores, user_weight)


def blend_pool(cand: np.ndarray, rel: np.ndarray, n: int, user_scores=None,
               user_weight: float = DEFAULT_USER_WEIGHT) -> dict[str, np.ndarray]:
    """:func:`blend` on a pool already chosen (:func:`relevant_pool`, or a cached one).

    Parameters
    ----------
    cand : (m,) int64
        Pooled items, best relevance first.
    rel : (m,) float32
        Their relevance (> 0).
    n, user_scores, user_weight : as in :func:`blend`

    Returns
    -------
    dict as :func:`blend`.
    """
    _check_weight(user_weight)
    if user_scores is None or len(cand) == 0:
        k = min(n, len(cand))
        return {"idx": cand[:k], "score": rel[:k], "relevance": rel[:k], "user": np.full(k, np.nan, np.float32)}
    u = np.asarray(user_scores(cand) if callable(user_scores) else np.asarray(user_scores)[cand], np.float64)
    u = np.where(np.isnan(u), -np.inf, u)
    pct = (average_ranks(u) / len(u)).astype(np.float32)
    score = (1.0 - user_weight) * rel / rel.max() + user_weight * pct
    order = np.lexsort((cand, -score))[:n]  # ties: lower item index first, as top_n does
    return {"idx": cand[order], "score": score[order].astype(np.float32), "relevance": rel[order], "user": pct[order]}


def _check_weight(user_weight: float) -> None:
    if not 0.0 <= user_weight <= 1.0:
        raise ConfigError(f"user_weight must be in [0, 1], got {user_weight}")
