"""Incremental updates: new interactions folded into a fitted model without a full refit.

:func:`update_model` takes a fitted model and a log of new interactions whose id maps extend the
model's (the fitted users and items first, in order; new ones appended) and updates the model in
place:

- **new items** join through :meth:`~recsys.models.base.Recommender.add_items`, the path items
  registered while serving take: with media, content models (content, bridge, hybrid) score them
  from it at once; without, they start cold;
- the model switches to the **updated interactions** (fitted + new; a repeated pair sums its
  weights, as :meth:`Interactions.union` does), so seen-item filtering, popularity and the cold
  flags (an item with interactions is no longer cold) follow the new data;
- each model re-learns only what the new interactions touch:

  ============  ==========================================================================
  popularity    counts recomputed (its fit *is* a count: the update equals a refit)
  user-kNN      neighbours read the updated matrix (its fit is the matrix: equals a refit)
  item-kNN      the neighbour lists of touched items recomputed; other lists keep their old
                similarities to them
  ALS           touched items re-solved against the fitted user factors, then touched and
                new users against the updated item factors (:meth:`ALS.partial_fit`)
  content       the profiles of touched and new users recomputed (item vectors come from
                media and do not change: the update equals a refit)
  bridge        its ALS updated as above, then its content -> factor net retrained on the
                updated ALS factors (and its norm recalibrated); newly warm items take their
                ALS factors
  hybrid        its ALS and bridge as above, item-kNN and content profiles as above; item
                popularity, the cold flags and the popular candidates recomputed; the ranker
                and its cold-item boost kept (learned from cross-fitted folds of the fitted data)
  ============  ==========================================================================

What is *not* re-learned (the factors of untouched users, the hybrid's ranker) is what a refit
would redo; the update job (:mod:`recsys.jobs.update`) measures how far the model has
drifted from its fitted state and says when a refit is due.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from recsys.data.interactions import IdMap, Interactions
from recsys.errors import DataError

_log = logging.getLogger(__name__)

#: model names :func:`update_model` knows how to update (``Recommender.name``)
UPDATABLE = ("popularity", "itemknn", "userknn", "als", "content", "bridge", "hybrid")


@dataclass
class UpdateSummary:
    """What one update changed.

    Attributes
    ----------
    new_pairs : int
        Stored pairs of the new log.
    repeated_pairs : int
        Of those, pairs the model had already seen (their weights were added).
    new_users, new_items : int
        Ids appended to the maps.
    new_items_with_media : int
        New items that came with content features (scored from their media at once).
    touched_users, touched_items : int
        Users and items with entries in the new log (re-solved where the model solves).
    warmed_items : int
        Items without interactions before (cold) that have some now.
    interactions : int
        Stored pairs after the update.
    seconds : float
        Wall time of the model update (growth, re-solves, statistics).
    """

    new_pairs: int
    repeated_pairs: int
    new_users: int
    new_items: int
    new_items_with_media: int
    touched_users: int
    touched_items: int
    warmed_items: int
    interactions: int
    seconds: float

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else int(v)) for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------- interactions
def check_extends(old: Interactions, new: Interactions) -> None:
    """Raise :class:`DataError` unless ``new``'s id maps begin with ``old``'s (same ids, same order)."""
    if new.n_users < old.n_users or new.n_items < old.n_items:
        raise DataError(f"the updated interactions ({new.n_users} users x {new.n_items} items) are smaller than the "
                        f"fitted ones ({old.n_users} x {old.n_items}); an update only appends users and items")
    for kind, a, b in (("user", old.user_ids, new.user_ids), ("item", old.item_ids, new.item_ids)):
        if not np.array_equal(np.asarray(a, dtype=object), np.asarray(b[: len(a)], dtype=object)):
            raise DataError(f"the updated {kind} ids do not begin with the fitted {kind} ids in their order; "
                            "build the new log on the model's maps (recsys.models.incremental.extend)")


def extend(x: Interactions, user_ids: IdMap, item_ids: IdMap) -> Interactions:
    """``x`` on the longer id maps ``user_ids``/``item_ids`` (which begin with ``x``'s): the same
    entries, new users and items without any."""
    n_users, n_items = len(user_ids), len(item_ids)
    m = x.matrix
    indptr = np.concatenate([m.indptr, np.full(n_users - x.n_users, m.indptr[-1], dtype=m.indptr.dtype)])
    grown = Interactions(sp.csr_matrix((m.data, m.indices, indptr), shape=(n_users, n_items)), user_ids, item_ids,
                         x.timestamps)
    check_extends(x, grown)
    return grown


def changes(old: Interactions, new: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Users and items whose rows/columns differ between ``old`` and ``new`` (``new`` extends ``old``).

    Returns
    -------
    users : (a,) int64, sorted
    items : (b,) int64, sorted
    """
    check_extends(old, new)
    o = old.matrix
    padded = sp.csr_matrix((o.data, o.indices, np.concatenate(
        [o.indptr, np.full(new.n_users - old.n_users, o.indptr[-1], dtype=o.indptr.dtype)])), shape=new.shape)
    d = (new.matrix - padded).tocoo()
    keep = d.data != 0
    return np.unique(d.row[keep]).astype(np.int64), np.unique(d.col[keep]).astype(np.int64)


def combine(old: Interactions, new: Interactions) -> Interactions:
    """The fitted interactions plus the new ones, on ``new``'s maps (a pair in both sums its weights,
    as :meth:`Interactions.union` does; timestamps are kept when both sides have them)."""
    if old.timestamps is not None and new.timestamps is None and new.nnz:
        _log.warning("the new log has no timestamps: the updated interactions keep none")
    return extend(old, new.user_map, new.item_map).union(new)


# ---------------------------------------------------------------------------- the update
def update_model(model, new: Interactions, item_features=None) -> UpdateSummary:
    """Fold the interactions ``new`` into the fitted ``model`` in place (see the module docstring).

    Parameters
    ----------
    model : Recommender
        Fitted; one of :data:`UPDATABLE`.
    new : Interactions
        The new interactions, on id maps that begin with the model's (``model.train_``) and append
        new users and items (:func:`extend` builds such maps).
    item_features : ItemFeatures, optional
        Content rows by item id, aligned here to the updated item map: the rows of new items give
        them media (items without a row, or without media in it, start without); the bridge and
        the hybrid retrain their content -> factor net on every row, so they need the rows of all
        items (a bundle's features plus the new items'). Ignored by models that read no content.

    Returns
    -------
    UpdateSummary
    """
    from recsys.models import MODELS

    model._check_fitted()
    if model.name not in UPDATABLE or not isinstance(model, MODELS[model.name]):
        raise DataError(f"cannot update a {type(model).__name__}; updatable models: {', '.join(UPDATABLE)}")
    t0 = time.perf_counter()
    old = model.train_
    check_extends(old, new)
    if model.uses_features and old.timestamps is not None and new.timestamps is None and new.nnz:
        # content profiles weight a user's history by recency: without times it would silently change
        raise DataError("the model's interactions have timestamps but the new log has none; give the new log its "
                        "timestamp column (--time-col) so recency weighting keeps working")
    feats = None
    if model.name in _RETRAINS_BRIDGE:
        feats = _all_item_rows(model, new, item_features)
    new_item_ids = new.item_ids[old.n_items:].tolist()
    with_media = 0
    if new_item_ids:
        rows = None
        if item_features is not None and model.uses_features:
            rows = item_features.align(new_item_ids)
            with_media = int(rows.mask_of("fused").sum())  # any modality
        model.add_items(new_item_ids, rows)
    if new.nnz == 0 and new.n_users == old.n_users:  # nothing to learn from: the model stays as fitted
        return UpdateSummary(0, 0, 0, len(new_item_ids), with_media, 0, 0, 0, int(old.nnz),
                             time.perf_counter() - t0)
    before = np.zeros(new.n_items, dtype=np.int64)
    before[: old.n_items] = old.item_counts()
    combined = combine(model.train_, new)
    users = new.active_users()
    items = np.unique(new.matrix.indices).astype(np.int64)
    _UPDATERS[model.name](model, combined, users, items, feats)
    repeated = int(np.intersect1d(extend(old, new.user_map, new.item_map).pair_keys(), new.pair_keys(),
                                  assume_unique=True).size)
    after = combined.item_counts()
    return UpdateSummary(
        new_pairs=int(new.nnz), repeated_pairs=repeated, new_users=int(new.n_users - old.n_users),
        new_items=len(new_item_ids), new_items_with_media=with_media, touched_users=int(len(users)),
        touched_items=int(len(items)), warmed_items=int(((before == 0) & (after > 0)).sum()),
        interactions=int(combined.nnz), seconds=time.perf_counter() - t0,
    )


def _switch(model, interactions: Interactions) -> None:
    """The base-class state of a fitted model moved to ``interactions`` (what ``fit`` sets)."""
    model.train_ = interactions
    model.n_users_, model.n_items_ = interactions.shape
    model.item_popularity_ = interactions.item_counts().astype(np.float32)


def _all_item_rows(model, new: Interactions, item_features):
    """``item_features`` aligned to the updated item map, checked to cover every fitted item with
    media (a bridge retrained without them would forget their content)."""
    if item_features is None:
        raise DataError(f"updating a {model.name} retrains its content -> factor net: pass item_features= with the "
                        "rows of every item (the bundle's features)")
    rows = item_features.align(new.item_map)
    bridge = model.bridge_ if model.name == "hybrid" else model
    lost = bridge.has_media_ & ~rows.mask_of(bridge.block)[: len(bridge.has_media_)]
    if lost.any():
        raise DataError(f"item_features lack the {bridge.block!r} rows of {int(lost.sum())} fitted items with media "
                        f"(e.g. {new.item_ids[[int(np.argmax(lost))]].tolist()[0]!r}); pass the features of every item")
    return rows


def _refit(model, x: Interactions, users: np.ndarray, items: np.ndarray, feats=None) -> None:
    # popularity and user-kNN: the fit is a closed form over the matrix, one pass; refitting is the update
    model.fit(x)


def _update_als(model, x: Interactions, users: np.ndarray, items: np.ndarray, feats=None) -> None:
    model.partial_fit(x, users, items)


def _update_itemknn(model, x: Interactions, users: np.ndarray, items: np.ndarray, feats=None) -> None:
    """Neighbour lists of the touched items recomputed exactly; other items' lists keep their
    members and their (old) similarities to the touched items."""
    from recsys.models.base import batch_size_for
    from recsys.models.knn import _col_norms, _keep_top_k

    _switch(model, x)
    mat = model._matrix(x.matrix)
    norms = _col_norms(mat)
    lists = model.similarity_.T.tocsr().tolil()  # row j: item j's neighbours (see ItemKNN._fit)
    xt = mat.T.tocsr()
    for start in range(0, len(items), batch_size_for(x.n_items, 1024)):
        block = items[start : start + batch_size_for(x.n_items, 1024)]
        co = np.asarray((xt[block] @ mat).todense(), dtype=np.float32)
        co /= norms[block, None] * norms[None, :] + model.shrink + 1e-12
        co[np.arange(len(block)), block] = 0.0
        fresh = _keep_top_k(co, model.k).tolil()
        for r, j in enumerate(block):
            lists.rows[j], lists.data[j] = fresh.rows[r], fresh.data[r]
    model.similarity_ = lists.tocsr().T.tocsr()
    model.item_norms_ = norms


def _update_content(model, x: Interactions, users: np.ndarray, items: np.ndarray, feats=None) -> None:
    """Profiles of touched (and new) users recomputed; a profile depends only on its own row."""
    from recsys.models.base import pad_rows

    _switch(model, x)
    model.user_profiles_ = pad_rows(model.user_profiles_, x.n_users - model.user_profiles_.shape[0])
    if len(users):
        model.user_profiles_[users] = model._profiles(model._profile_weights(x)[users])


def _update_bridge(model, x: Interactions, users: np.ndarray, items: np.ndarray, feats=None) -> None:
    """Its ALS updated, then its net retrained on the updated ALS factors (``Bridge.fit_from``: the
    net maps content into the ALS factor space, which the update moved; a standalone bridge also
    recalibrates its norm). Newly warm items take their ALS factors."""
    model.als_.partial_fit(x, users, items)
    model.fit_from(model.als_, x, feats)


def _update_hybrid(model, x: Interactions, users: np.ndarray, items: np.ndarray, feats=None) -> None:
    model.als_.partial_fit(x, users, items)
    # the media component is the bridge's net: trained on the stale factors it misses what the
    # new interactions taught ALS (TikTok, fit on train, updated with val: test recall@20 0.1237
    # with the old net, 0.1560 with one retrained on the updated ALS; a refit reaches 0.1471)
    model.bridge_.fit_from(model.als_, x, feats)
    if model.itemknn_ is not None:
        _update_itemknn(model.itemknn_, x, users, items)
    for content in model.contents_.values():
        _update_content(content, x, users, items)
    _switch(model, x)
    counts = x.item_counts()
    model.log_pop_ = np.log1p(counts).astype(model.log_pop_.dtype)
    model.cold_ = (counts == 0).astype(np.float32)
    model.popular_ = np.argsort(-counts, kind="stable")[: len(model.popular_)]
    model.__dict__.pop("_moment_cache", None)  # candidate-only serving's item statistics are stale


#: models whose update retrains the bridge net (they need every item's content rows)
_RETRAINS_BRIDGE = ("bridge", "hybrid")
_UPDATERS = {
    "popularity": _refit,
    "userknn": _refit,
    "itemknn": _update_itemknn,
    "als": _update_als,
    "content": _update_content,
    "bridge": _update_bridge,
    "hybrid": _update_hybrid,
}
