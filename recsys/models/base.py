"""The one recommender contract every model shares.

A model implements ``_fit`` and ``_score_users`` (dense scores for a batch of users over all items);
this base class owns the rest: batching, top-n with seen-item filtering, ``items=`` restriction,
pair scoring, cold users and items, and state for saving.

The contract follows scikit-learn's estimator rules: settings are the constructor's named
parameters, stored unchanged (:meth:`Recommender.get_params` reads the ``__init__`` signature and
:func:`clone` checks it); the hooks a model must write are abstract (``abc``), so an incomplete
subclass fails when instantiated, not when first called; what a model can do is declared once, as
class attributes (:data:`CAPABILITIES`, read with :func:`capabilities`).

Conventions
-----------
- ``user_idx`` are dense indices of the training :class:`~recsys.data.Interactions`. An index
  outside ``0..n_users-1`` (or -1) is an unknown user: the model folds it in from the given
  ``user_items`` row when it can (ALS, kNN, content), else answers with its cold-start fallback
  (popularity). It never raises for an unknown user.
- ``user_items`` (CSR) rows correspond to the requested users (one row for a single user), as in
  the ``implicit`` library. ``None`` means "the training interactions of these users".
- ``recommend`` returns ``(idx, scores)``: 1-D for one user, 2-D ``(b, n)`` for a batch; rows are
  padded with ``-1`` / ``-inf`` when fewer than ``n`` items are eligible.
"""

from __future__ import annotations

import abc
import copy
import inspect
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError, FitError, NotFittedError
from recsys.topk import top_n  # noqa: F401  (re-exported: the models' and evaluators' top-n)

#: the capabilities every model declares as class attributes (see :class:`Recommender`)
CAPABILITIES = ("uses_features", "learns_from_validation", "supports_fold_in", "supports_new_items")

# Dense score blocks are capped at this many float32 cells (~256 MiB), so a users x items matrix
# is never materialised beyond one batch.
MAX_BLOCK_CELLS = 64 * 1024 * 1024


def batch_size_for(n_items: int, requested: int | None = None) -> int:
    """Users per scoring batch so that one dense (batch, n_items) block stays under the cap."""
    cap = max(1, MAX_BLOCK_CELLS // max(n_items, 1))
    return max(1, min(requested or 1024, cap))


class Recommender(abc.ABC):
    """Base class. Subclasses set ``name`` and implement ``_fit`` and ``_score_users``.

    Constructors only store settings, each under its parameter's name (``get_params`` reads the
    ``__init__`` signature); everything learned ends in ``_`` and is created by ``fit``.

    Capabilities are class attributes, declared here with their defaults and set by each model
    (read them with :func:`capabilities`, never by probing attributes):

    - ``uses_features``: ``fit`` needs item content features (it raises ``DataError`` without).
    - ``learns_from_validation``: after fitting, :meth:`choose_on_validation` chooses settings on a
      validation part (validation interactions are never a training label) and
      :meth:`validation_choice` says what it chose.
    - ``supports_fold_in``: a user unknown at fit time is scored from a short history
      (``recommend(-1, user_items)``) without refitting; otherwise such users get the cold answer.
    - ``supports_new_items``: :meth:`add_items` appends items after fitting.
    """

    name = "base"
    uses_features: bool = False
    learns_from_validation: bool = False
    supports_fold_in: bool = False
    supports_new_items: bool = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # a declared capability without the hook that provides it would fail only when first used
        if cls.supports_new_items and cls._grow_items is Recommender._grow_items:
            raise TypeError(f"{cls.__name__} declares supports_new_items but does not implement _grow_items")
        if cls.supports_fold_in and cls._score_new_users is Recommender._score_new_users:
            raise TypeError(f"{cls.__name__} declares supports_fold_in but does not implement _score_new_users")

    # ------------------------------------------------------------------ public API
    def check_settings(self) -> None:
        """Raise :class:`~recsys.errors.ConfigError` for settings out of range, before any data is
        read (``fit`` calls it first; the jobs call it while checking arguments). Default: nothing."""

    def fit(self, interactions: Interactions, item_features=None) -> "Recommender":
        """Learn from training interactions (and item content features for content models).

        Parameters
        ----------
        interactions : Interactions
            Training data; its id maps define the index space of every later call.
        item_features : ItemFeatures, optional
            Rows aligned to ``interactions.item_ids`` (use ``ItemFeatures.align``).
        """
        self.check_settings()
        if not isinstance(interactions, Interactions):
            raise DataError(f"fit expects Interactions, got {type(interactions).__name__}")
        if interactions.nnz == 0:
            raise DataError("cannot fit on empty interactions")
        if self.uses_features and item_features is None:
            raise DataError(f"the {self.name} model needs item features: pass item_features= aligned to the "
                            "interactions' items (ItemFeatures.align); on the command line run `avrec features` "
                            "and pass --features DIR")
        self.train_ = interactions
        self.n_users_, self.n_items_ = interactions.shape
        self.item_popularity_ = interactions.item_counts().astype(np.float32)
        self._fit(interactions, item_features)
        return self

    def recommend(
        self,
        user_idx: int | np.ndarray,
        user_items: sp.csr_matrix | None = None,
        n: int = 10,
        filter_seen: bool = True,
        items: np.ndarray | None = None,
        batch_size: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for one user or a batch.

        Parameters
        ----------
        user_idx : int or (b,) int
            Dense user indices; unknown users (-1 or >= n_users) get cold-start answers.
        user_items : CSR (1 or b, n_items), optional
            The users' interactions, row per requested user; default their training rows.
            Used to filter seen items and to fold in unknown users.
        n : int
            List length.
        filter_seen : bool
            Exclude items in ``user_items`` (default True).
        items : (m,) int, optional
            Restrict the candidates to these item indices.
        batch_size : int, optional
            Users per dense scoring block (capped so a block stays under ~256 MiB).

        Returns
        -------
        idx : (n,) or (b, n) int64
        scores : (n,) or (b, n) float32
        """
        self._check_fitted()
        single = np.ndim(user_idx) == 0
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        rows = self._user_rows(users, user_items)
        cand = None
        if items is not None:
            cand = np.unique(np.asarray(items, dtype=np.int64))
            if len(cand) and (cand.min() < 0 or cand.max() >= self.n_items_):
                raise DataError(f"items= contains indices outside 0..{self.n_items_ - 1}")
        bs = batch_size_for(self.n_items_ if cand is None else len(cand), batch_size)
        out_idx = np.empty((len(users), n), dtype=np.int64)
        out_val = np.empty((len(users), n), dtype=np.float32)
        for start in range(0, len(users), bs):
            sl = slice(start, start + bs)
            block = rows if len(users) <= bs else rows[sl]
            scores = self.scores(users[sl], block)
            if filter_seen:
                mask_seen(scores, block)
            if cand is not None:
                scores = scores[:, cand]
            idx, val = top_n(scores, n)
            if cand is not None:
                idx = np.where(idx >= 0, cand[np.maximum(idx, 0)], -1)
            out_idx[sl], out_val[sl] = idx, val
        return (out_idx[0], out_val[0]) if single else (out_idx, out_val)

    def scores(self, user_idx: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """Dense scores of a batch of users over all items, (b, n_items) float32.

        Unknown users are folded in from ``user_items`` or get the cold fallback. Use
        :meth:`recommend` for lists; this is the block the evaluation runner ranks exactly.
        """
        self._check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        rows = self._user_rows(users, user_items)
        known = (users >= 0) & (users < self.n_users_)
        if known.all():
            return np.asarray(self._score_users(users, rows), dtype=np.float32)
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        if known.any():
            out[known] = self._score_users(users[known], rows[np.flatnonzero(known)])
        unk = np.flatnonzero(~known)
        out[unk] = self._score_new_users(rows[unk])
        return out

    def score(self, user_idx: int | np.ndarray, item_idx: int | np.ndarray) -> np.ndarray:
        """Scores of (user, item) pairs; arrays broadcast. Returns float32 of the broadcast shape."""
        self._check_fitted()
        u, i = np.broadcast_arrays(np.asarray(user_idx, dtype=np.int64), np.asarray(item_idx, dtype=np.int64))
        flat_u, flat_i = u.ravel(), i.ravel()
        if len(flat_i) and (flat_i.min() < 0 or flat_i.max() >= self.n_items_):
            raise DataError(f"item indices outside 0..{self.n_items_ - 1}")
        out = self._score_pairs(flat_u, flat_i)
        return out.reshape(u.shape).astype(np.float32)

    def similar_items(self, item_idx: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items most similar to ``item_idx`` (itself excluded), best first."""
        self._check_fitted()
        if not 0 <= int(item_idx) < self.n_items_:
            raise DataError(f"item index {item_idx} outside 0..{self.n_items_ - 1}")
        sims = np.asarray(self._item_similarities(int(item_idx)), dtype=np.float32).reshape(1, -1).copy()
        sims[0, int(item_idx)] = -np.inf
        idx, val = top_n(sims, n)
        return idx[0], val[0]

    def choose_on_validation(self, val: Interactions) -> dict:
        """Choose settings on a validation part after fitting; returns what was chosen and why.

        Only models with ``learns_from_validation`` do anything (the hybrid picks its cold-item
        exposure); the rest have nothing to choose and return ``{}``.
        """
        return {}

    def validation_choice(self) -> dict:
        """What :meth:`choose_on_validation` chose and why (``{}`` when nothing was chosen)."""
        return {}

    def knows_user(self, user_idx: int) -> bool:
        """Whether the user had training interactions (else answers are cold-start)."""
        self._check_fitted()
        return 0 <= user_idx < self.n_users_ and self.train_.matrix.indptr[user_idx + 1] > self.train_.matrix.indptr[user_idx]

    def knows_item(self, item_idx: int) -> bool:
        """Whether the item had training interactions (else the model scores it cold)."""
        self._check_fitted()
        return 0 <= item_idx < self.n_items_ and self.item_popularity_[item_idx] > 0

    # ------------------------------------------------------------------ state (bundles)
    #: learned attributes a bundle saves: arrays, sparse matrices, JSON values, nested models
    #: (a model whose state needs conversion overrides ``get_state`` / ``_restore``)
    _state_attrs: tuple[str, ...] = ()

    def get_state(self) -> dict[str, Any]:
        """Everything learned beyond the training interactions, as plain values.

        Values are numpy arrays, scipy CSR matrices, JSON-serialisable values, nested
        :class:`Recommender` objects or dicts of those; :mod:`serving.bundle` writes them without
        pickle. ``from_state(params, get_state(), interactions, item_features)`` rebuilds a model
        that answers identically.
        """
        self._check_fitted()
        return {a: getattr(self, a) for a in self._state_attrs}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any], interactions: Interactions,
                   item_features=None) -> "Recommender":
        """A fitted model from constructor ``params``, a :meth:`get_state` dict and its training data."""
        from recsys.errors import BundleError

        unknown = sorted(set(params) - set(cls._param_names()))
        if unknown:
            raise BundleError(f"{cls.__name__} has no settings {unknown} (its settings: {cls._param_names()}); "
                              "the bundle is from another version")
        model = cls(**params)
        missing = [a for a in model._state_attrs if a not in state]
        if missing:
            raise BundleError(f"{cls.__name__} state lacks {missing}; the bundle is incomplete or from another version")
        model.train_ = interactions
        model.n_users_, model.n_items_ = interactions.shape
        model.item_popularity_ = interactions.item_counts().astype(np.float32)
        for a in model._state_attrs:
            setattr(model, a, state[a])
        model._restore(state, item_features)
        return model

    def _restore(self, state: dict[str, Any], item_features) -> None:
        """Rebuild derived attributes after :meth:`from_state` set the saved ones."""

    # ------------------------------------------------------------------ new items (serving)
    def add_items(self, item_ids: Sequence, item_features=None) -> np.ndarray:
        """Append items unknown at fit time (no interactions), so they can be scored at once
        (models with ``supports_new_items``; the others raise ``ConfigError``).

        Models that read content (content, bridge, hybrid) score them from ``item_features``;
        collaborative models give them the cold answer (zero factors, no neighbours, popularity 0).

        Parameters
        ----------
        item_ids : sequence of raw ids, none of them known
        item_features : ItemFeatures, optional
            Rows for exactly these items, with the blocks (and fused matrix) the model was fitted on.

        Returns
        -------
        idx : (m,) int64, the new items' indices
        """
        self._check_fitted()
        if not self.supports_new_items:
            raise ConfigError(f"the {self.name} model cannot add items after fitting; refit it with them")
        ids = list(item_ids)
        known = [i for i in ids if i in self.train_.item_map]
        if known:
            raise DataError(f"items already known: {known[:5]}")
        if item_features is not None and list(item_features.item_ids.tolist()) != ids:
            raise DataError("item_features rows must be exactly the new items, in order")
        start = self.n_items_
        self._grow(self.train_.with_new_items(ids), item_features)
        return np.arange(start, start + len(ids), dtype=np.int64)

    def _grow(self, interactions: Interactions, new_features) -> None:
        """Switch to ``interactions`` (same users, new item columns) and extend learned arrays."""
        m = interactions.n_items - self.n_items_
        self.train_ = interactions
        self.n_items_ = interactions.n_items
        self.item_popularity_ = np.concatenate([self.item_popularity_, np.zeros(m, np.float32)])
        self._grow_items(m, new_features)

    def _grow_items(self, m: int, new_features) -> None:
        """Extend learned per-item arrays by ``m`` new items (models with ``supports_new_items``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot add items after fitting")

    @classmethod
    def _param_names(cls) -> list[str]:
        """The constructor's parameter names, in signature order (scikit-learn's ``_get_param_names``)."""
        if cls.__init__ is object.__init__:  # no constructor: no settings
            return []
        params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ takes {p}: settings must be named parameters, so that "
                                "get_params and clone can read them from the signature")
        return [p.name for p in params]

    def get_params(self) -> dict[str, Any]:
        """Constructor settings by name (JSON-serialisable), read from the ``__init__`` signature.

        Other public attributes are not settings: ``clone``, ``from_state`` and bundles ignore them.
        """
        names = self._param_names()
        missing = [n for n in names if n not in vars(self)]
        if missing:  # a constructor that does not store a parameter under its name breaks clone
            raise AttributeError(f"{type(self).__name__} does not store its settings {missing} under their names")
        return {n: getattr(self, n) for n in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def _fit(self, interactions: Interactions, item_features) -> None:
        """Learn from ``interactions`` (``train_``, ``n_users_``, ``n_items_`` and
        ``item_popularity_`` are already set); ``item_features`` is None unless ``uses_features``
        or the caller passed them."""

    @abc.abstractmethod
    def _score_users(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        """(b, n_items) scores of known users; ``rows`` are their interaction rows."""

    def _score_new_users(self, rows: sp.csr_matrix) -> np.ndarray:
        """(b, n_items) scores of users unknown at fit time from their interaction rows.

        Default: the popularity fallback (same list for everyone).
        """
        return np.broadcast_to(self.item_popularity_, (rows.shape[0], self.n_items_)).copy()

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Default pair scoring through dense user rows, one block per distinct user batch."""
        out = np.empty(len(users), dtype=np.float32)
        uniq, inv = np.unique(users, return_inverse=True)
        bs = batch_size_for(self.n_items_)
        for start in range(0, len(uniq), bs):
            block_users = uniq[start : start + bs]
            s = self.scores(block_users)
            sel = (inv >= start) & (inv < start + bs)
            out[sel] = s[inv[sel] - start, items[sel]]
        return out

    def _item_similarities(self, item_idx: int) -> np.ndarray:
        """(n_items,) similarity of every item to ``item_idx``; default co-occurrence cosine."""
        x = self.train_.matrix
        col = x[:, item_idx]
        co = np.asarray((x.T @ col).todense()).ravel()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        return co / np.maximum(norms * norms[item_idx], 1e-12)

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "train_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(interactions) first")

    def _user_rows(self, users: np.ndarray, user_items: sp.csr_matrix | None) -> sp.csr_matrix:
        if user_items is None:
            known = (users >= 0) & (users < self.n_users_)
            if len(users) == 1 and known[0]:  # one known user (serving): a slice, no fancy indexing
                return self.train_.matrix[int(users[0]) : int(users[0]) + 1]
            if known.all():  # a batch of known users (serving's batches): gather the CSR rows directly
                return csr_rows(self.train_.matrix, users)
            # unknown users without a history: empty rows
            rows = self.train_.matrix[np.where(known, users, 0)].tolil()
            for r in np.flatnonzero(~known):
                rows.rows[r] = []
                rows.data[r] = []
            return rows.tocsr()
        # rows built by recommend() are already float32 CSR: do not rebuild (and re-check) them
        rows = user_items if isinstance(user_items, sp.csr_matrix) and user_items.dtype == np.float32 \
            else sp.csr_matrix(user_items, dtype=np.float32)
        if rows.shape != (len(users), self.n_items_):
            raise DataError(
                f"user_items has shape {rows.shape}; expected one row per requested user: "
                f"({len(users)}, {self.n_items_})"
            )
        return rows

    def _check_finite(self, *arrays: np.ndarray) -> None:
        for a in arrays:
            if not np.isfinite(a).all():
                raise FitError(f"{type(self).__name__} fit produced NaN or infinite values; lower the learning rate or raise regularization")

    def config_json(self) -> str:
        """Model class and settings as JSON (for bundles and reports)."""
        return json.dumps({"model": type(self).__name__, "params": self.get_params()}, default=str)


class EmbeddingRecommender(Recommender):
    """A model whose score is the dot product of a user vector and an item vector (ALS, bridge,
    content). Subclasses name their vectors; scoring, new users, pairs and similar items are here.

    Subclasses implement ``_user_vectors() -> (n_users, d)``, ``_item_vectors() -> (n_items, d)`` and
    ``_new_user_vectors(rows) -> (b, d)`` (fold-in or profile of users unknown at fit time).
    """

    @abc.abstractmethod
    def _user_vectors(self) -> np.ndarray:
        """(n_users, d) float32 vectors of the training users."""

    @abc.abstractmethod
    def _item_vectors(self) -> np.ndarray:
        """(n_items, d) float32 vectors of every item."""

    @abc.abstractmethod
    def _new_user_vectors(self, rows: sp.csr_matrix) -> np.ndarray:
        """(b, d) float32 vectors of users unknown at fit time from their interaction rows."""

    def _score_users(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        return self._user_vectors()[users] @ self._item_vectors().T

    def _score_new_users(self, rows: sp.csr_matrix) -> np.ndarray:
        scores = self._new_user_vectors(rows) @ self._item_vectors().T
        empty = np.diff(rows.indptr) == 0
        if empty.any():  # no history: a zero vector scores everything alike; answer popularity
            scores[empty] = self.item_popularity_
        return scores

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        known = (users >= 0) & (users < self.n_users_)
        if not known.all():
            return super()._score_pairs(users, items)
        return np.einsum("ij,ij->i", self._user_vectors()[users], self._item_vectors()[items])

    def _item_similarities(self, item_idx: int) -> np.ndarray:
        v = self._item_vectors()
        norms = np.linalg.norm(v, axis=1)
        return (v @ v[item_idx]) / np.maximum(norms * norms[item_idx], 1e-12)

    # ------------------------------------------------------------------ retrieval through an index
    def recommend(self, user_idx, user_items=None, n: int = 10, filter_seen: bool = True, items=None,
                  batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items (see :meth:`Recommender.recommend`).

        With item indexes attached (:func:`recsys.retrieval.attach`: ``index_``) and no ``items``
        restriction, the lists come from the inner-product index over the user vectors (folded in
        for unknown users), seen items excluded by the index: an exact index gives the very lists
        of the dense path, an approximate one (large catalogs) nearly the same, never a seen item.
        Users unknown without a history keep the popularity answer of the dense path.
        """
        from recsys.retrieval import current_index

        index = current_index(self, "ip") if items is None else None
        if index is None:
            return super().recommend(user_idx, user_items, n, filter_seen, items, batch_size)
        self._check_fitted()
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        single = np.ndim(user_idx) == 0
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        rows = self._user_rows(users, user_items)
        known = (users >= 0) & (users < self.n_users_)
        no_vector = ~known & (np.diff(rows.indptr) == 0)
        out_idx = np.empty((len(users), n), dtype=np.int64)
        out_val = np.empty((len(users), n), dtype=np.float32)
        if no_vector.any():
            c = np.flatnonzero(no_vector)
            out_idx[c], out_val[c] = super().recommend(users[c], rows[c], n, filter_seen, None, batch_size)
        vec = np.flatnonzero(~no_vector)
        if len(vec):
            sub = rows if len(vec) == len(users) else rows[vec]
            u = np.empty((len(vec), self._item_vectors().shape[1]), dtype=np.float32)
            k = known[vec]
            if k.any():
                u[k] = self._user_vectors()[users[vec][k]]
            if not k.all():
                u[~k] = self._new_user_vectors(sub[np.flatnonzero(~k)])
            out_idx[vec], out_val[vec] = index.search(u, n, exclude=sub if filter_seen else None)
        return (out_idx[0], out_val[0]) if single else (out_idx, out_val)

    def similar_items(self, item_idx: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items most similar to ``item_idx`` by cosine (itself excluded), best first.

        With indexes attached, from the cosine index; items with a zero vector (not in it) score 0
        against every item, as on the dense path, and are merged in at 0 (lowest index first).
        """
        from recsys.retrieval import current_index

        index = current_index(self, "cos")
        if index is None:
            return super().similar_items(item_idx, n)
        self._check_fitted()
        i = int(item_idx)
        if not 0 <= i < self.n_items_:
            raise DataError(f"item index {item_idx} outside 0..{self.n_items_ - 1}")
        idx, val = index.search(self._item_vectors()[i : i + 1], n, exclude=[np.array([i])])
        zero = self.index_.zero
        zero = zero[zero != i][:n]
        if len(zero):  # merge: by score, then by index, as the dense path orders its ties
            keep = idx[0] >= 0
            ids = np.concatenate([idx[0][keep], zero])
            vals = np.concatenate([val[0][keep], np.zeros(len(zero), np.float32)])
            order = np.lexsort((ids, -vals))[:n]
            idx = np.full((1, n), -1, np.int64)
            val = np.full((1, n), -np.inf, np.float32)
            idx[0, : len(order)], val[0, : len(order)] = ids[order], vals[order]
        return idx[0], val[0]


def csr_rows(m: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``m[rows]`` (b, n) for a CSR matrix and (b,) row indices, by gathering the rows' stored
    entries: scipy's fancy row indexing costs ~0.2 ms of checks and conversions per call, as much
    as the rest of a served batch's bookkeeping. Rows keep their order and their entries' order."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = m.indptr[rows], m.indptr[rows + 1]
    lens = ends - starts
    indptr = np.zeros(len(rows) + 1, dtype=m.indptr.dtype)
    np.cumsum(lens, out=indptr[1:])
    pos = np.repeat(starts - indptr[:-1], lens) + np.arange(indptr[-1])
    return sp.csr_matrix((m.data[pos], m.indices[pos], indptr), shape=(len(rows), m.shape[1]))


def pad_rows(a: np.ndarray, m: int, values: np.ndarray | None = None) -> np.ndarray:
    """``a`` with ``m`` rows appended: ``values`` (m, ...) or zeros."""
    extra = np.zeros((m, *a.shape[1:]), dtype=a.dtype) if values is None else np.asarray(values, dtype=a.dtype)
    return np.ascontiguousarray(np.concatenate([a, extra.reshape(m, *a.shape[1:])]))


def mask_seen(scores: np.ndarray, rows: sp.csr_matrix) -> None:
    """Exclude seen items: ``scores[r, j] = -inf`` for every stored entry (r, j) of ``rows``, in place.

    Parameters
    ----------
    scores : (b, n_items) float
    rows : CSR (b, n_items), the users' interactions (row r belongs to scores row r)
    """
    r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    scores[r, rows.indices] = -np.inf


def capabilities(model: "Recommender | type[Recommender]") -> dict[str, bool]:
    """What a model (or model class) declares it can do: ``{name: bool}`` over :data:`CAPABILITIES`."""
    cls = model if isinstance(model, type) else type(model)
    if not issubclass(cls, Recommender):
        raise TypeError(f"capabilities expects a Recommender or its class, got {cls.__name__}")
    return {c: bool(getattr(cls, c)) for c in CAPABILITIES}


def clone(model: Recommender) -> Recommender:
    """An unfitted copy of ``model`` with the same settings (scikit-learn's ``clone``).

    The settings are deep-copied, so the copy shares no mutable setting (a dict of component
    parameters) with the original. Raises ``RuntimeError`` when the model's constructor does not
    store its parameters unchanged: a bug in that model class, which ``get_params`` would misreport.
    """
    if not isinstance(model, Recommender):
        raise TypeError(f"clone expects a Recommender, got {type(model).__name__}")
    params = {k: copy.deepcopy(v) for k, v in model.get_params().items()}
    new = type(model)(**params)
    stored = new.get_params()
    changed = [k for k, v in params.items() if stored[k] is not v]
    if changed:
        raise RuntimeError(f"cannot clone {type(model).__name__}: its constructor changes or does not store "
                           f"{changed}; store every parameter unchanged and validate it in fit")
    return new
