"""The indexes of a fitted model: which kind (one rule), attaching, growing, saving and loading them.

A model whose score is a dot product of a user vector and an item vector (ALS, bridge, content:
:class:`~recsys.models.base.EmbeddingRecommender`) retrieves its top-n from an
:class:`ItemIndexes` over its item vectors: an inner-product index (user -> item,
``recommend``) and a cosine index (item -> item, ``similar_items`` and the server's
``similar?by=cf``). A hybrid holds one per embedding component, keyed by the component's name
(``als``, ``media``, ``content_<block>``), and passes each to its candidate-only serving.

Indexes are fitted state, not settings: :func:`attach` sets ``index_`` (an :class:`ItemIndexes`,
or for a hybrid a dict of them) and ``retrieval_`` (what was chosen and why, as JSON values) after
``fit``, from the fit job (``avrec fit``) and from bundle loading; constructors stay untouched.

**One rule** (:func:`decide`) chooses exact or approximate (faiss IVF) search: exact when asked
(``--exact``), approximate when asked (``exact=False``) or when the bundle holds saved
approximate indexes; otherwise exact below :data:`~recsys.retrieval.EXACT_MAX_ITEMS` items and
approximate above, except when loading a bundle without saved indexes (building one takes minutes
at a million items: never at server start; the reason says to refit).

An index is *current* while the model still scores with the item-vector array it was built from
(:meth:`ItemIndexes.current`); a model whose items grew (``add_items``) or whose factors were
replaced answers with its dense path until :func:`grow` (or a new :func:`attach`) catches up, so
a stale index never gives a wrong list.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import recsys.retrieval as _retrieval
from recsys.errors import BundleError
from recsys.retrieval import ExactIndex, VectorIndex, build_index, load_index
from recsys.retrieval.index import read_manifest
from recsys.retrieval.transform import row_norms

#: where :func:`save` writes its manifest inside the directory it is given
MANIFEST = "retrieval.json"
FORMAT = "avrec-retrieval"
FORMAT_VERSION = 1
METRIC_DIRS = {"ip": "ip", "cos": "cos"}


@dataclass
class ItemIndexes:
    """The indexes over one embedding model's item vectors.

    Attributes
    ----------
    vectors : (n_items, d) float32
        The model's item-vector array they were built from (a reference, not a copy): the
        indexes are current while the model still returns this very array.
    ip : VectorIndex or None
        Inner product over every item, ids = item indices (``recommend``, candidates).
    cos : VectorIndex or None
        Cosine over the items whose vector is not zero (``similar_items``).
    zero : (z,) int64
        Items with a zero vector: not in ``cos`` (cosine 0 with everything, and no direction).
    """

    vectors: np.ndarray
    ip: VectorIndex | None
    cos: VectorIndex | None
    zero: np.ndarray

    @property
    def kind(self) -> str:
        """``"exact"`` or ``"ivf"``."""
        return (self.ip if self.ip is not None else self.cos).kind

    def current(self, model) -> bool:
        """Whether ``model`` still scores with the vectors these indexes hold."""
        return model._item_vectors() is self.vectors


# ---------------------------------------------------------------------------- the rule
def decide(n_items: int, exact: bool | None = None, saved: bool = False, build: bool = True,
           threshold: int | None = None) -> tuple[str, str]:
    """Exact or approximate retrieval for a catalog of ``n_items``: ``(kind, reason)``.

    Parameters
    ----------
    n_items : int
    exact : bool, optional
        True: exact (``--exact``); False: approximate; None: by the catalog size.
    saved : bool
        A bundle holds approximate indexes (built at fit time).
    build : bool
        Whether an approximate index may be built now (the fit job: yes; loading a bundle: no).
    threshold : int, optional
        Catalog size from which approximate search is the default; default
        :data:`recsys.retrieval.EXACT_MAX_ITEMS` (read when called).

    Returns
    -------
    kind : {"exact", "ivf"}
    reason : str, one line for logs and ``/health``
    """
    threshold = _retrieval.EXACT_MAX_ITEMS if threshold is None else threshold
    if exact is True:
        return "exact", "exact search asked for (--exact)"
    if exact is False:
        return "ivf", "approximate search asked for (exact=False)"
    if saved:
        return "ivf", f"the bundle's approximate indexes ({n_items} items; exact below {threshold})"
    if n_items < threshold:
        return "exact", f"{n_items} items, below the approximate-search threshold of {threshold}"
    if build:
        return "ivf", f"{n_items} items, at or above the approximate-search threshold of {threshold}"
    return "exact", (f"{n_items} items, above the approximate-search threshold of {threshold}, but the bundle holds "
                     "no approximate index (fitted with --exact): exact search; refit without --exact to build one")


# ---------------------------------------------------------------------------- attach
def targets(model) -> list[tuple[str, Any, tuple[str, ...]]]:
    """``(key, embedding model, metrics)`` of every index ``model`` uses.

    A standalone embedding model: itself, ``ip`` and ``cos``. A hybrid: each embedding component
    that feeds candidates (``ip``), and its bridge (``cos``, the server's ``similar?by=cf``).
    Other models (popularity, kNN): none.
    """
    from recsys.models.base import EmbeddingRecommender

    if isinstance(model, EmbeddingRecommender):
        return [("model", model, ("ip", "cos"))]
    if not hasattr(model, "_sources") or not hasattr(model, "bridge_"):
        return []
    out = []
    for name, comp in model._sources(model):
        if not isinstance(comp, EmbeddingRecommender):
            continue
        source = name.split("_", 1)[0] if name.startswith("content_") else name
        metrics = ("ip",) if model._n_cand(source) > 0 else ()
        if comp is model.bridge_:
            metrics += ("cos",)
        if metrics:
            out.append((name, comp, metrics))
    if not any(comp is model.bridge_ for _, comp, _ in out):
        out.append(("media", model.bridge_, ("cos",)))
    return out


def attach(model, exact: bool | None = None, saved: str | Path | None = None, build: bool = True,
           threshold: int | None = None, **ann_params) -> dict[str, Any]:
    """Give a fitted model its item indexes (see the module docstring) and say what was chosen.

    Parameters
    ----------
    model : Recommender, fitted
    exact : bool, optional
        See :func:`decide`.
    saved : path, optional
        A directory written by :func:`save` (a bundle's ``retrieval/``): its approximate indexes
        are loaded instead of built (ignored with ``exact=True``).
    build : bool
        Whether approximate indexes may be built here (False when loading a bundle).
    threshold : int, optional
        Catalog size from which approximate search is the default; default
        :data:`recsys.retrieval.EXACT_MAX_ITEMS` (read when called: tests lower it).
    **ann_params
        :class:`~recsys.retrieval.IVFIndex` settings (``nlist``, ``nprobe``, ...) of built indexes.

    Returns
    -------
    dict
        ``model.retrieval_``: ``kind`` (``exact``, ``ivf``, or ``none`` for models without item
        vectors), ``reason``, ``threshold``, ``n_items``, ``seconds`` (build or load) and
        ``indexes`` (``{"<key>.<metric>": {kind, n, ...}}``).

    Raises
    ------
    BundleError
        ``saved`` does not match the model (another catalog, other components).
    """
    model._check_fitted()
    threshold = _retrieval.EXACT_MAX_ITEMS if threshold is None else threshold
    todo = targets(model)
    n_items = int(model.n_items_)
    if not todo:
        info = {"kind": "none", "reason": f"the {model.name} model has no item vectors: dense scoring",
                "threshold": threshold, "n_items": n_items, "seconds": 0.0, "indexes": {}}
        model.retrieval_ = info
        return info
    use_saved = saved is not None and exact is not True
    kind, reason = decide(n_items, exact, saved=use_saved, build=build, threshold=threshold)
    t0 = time.perf_counter()
    manifest = _read_manifest(Path(saved)) if use_saved else None
    indexes: dict[str, ItemIndexes] = {}
    for key, comp, metrics in todo:
        if manifest is not None:
            indexes[key] = _load_one(Path(saved), manifest, key, comp, metrics)
        else:
            indexes[key] = _build_one(comp, metrics, kind == "exact", ann_params)
        comp.index_ = indexes[key]
    model.index_ = indexes["model"] if set(indexes) == {"model"} else indexes
    info = {"kind": kind, "reason": reason, "threshold": threshold, "n_items": n_items,
            "seconds": round(time.perf_counter() - t0, 3),
            "indexes": {f"{key}.{m}": _describe(getattr(ix, m)) for key, ix in indexes.items()
                        for m in METRIC_DIRS if getattr(ix, m) is not None}}
    model.retrieval_ = info
    return info


def _nonzero(vectors: np.ndarray) -> np.ndarray:
    return row_norms(vectors) > 0


def _build_one(comp, metrics: tuple[str, ...], exact: bool, ann_params: dict) -> ItemIndexes:
    v = comp._item_vectors()
    has = _nonzero(v)
    ip = build_index(v, metric="ip", exact=exact, **ann_params) if "ip" in metrics else None
    cos = None
    if "cos" in metrics and has.any():
        ids = np.flatnonzero(has)
        cos = build_index(v if has.all() else v[has], ids=ids, metric="cos", exact=exact, **ann_params)
    return ItemIndexes(v, ip, cos, np.flatnonzero(~has).astype(np.int64))


def _describe(index: VectorIndex) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": index.kind, "metric": index.metric, "n": len(index), "dim": int(index.dim_)}
    if index.kind == "ivf":
        out.update(nlist=int(index.nlist_), nprobe=int(index.nprobe_))
    return out


def current_index(model, metric: str = "ip") -> VectorIndex | None:
    """The ``ip`` or ``cos`` index of an embedding model when it has one and it is current, else None."""
    ix = getattr(model, "index_", None)
    if not isinstance(ix, ItemIndexes) or not ix.current(model):
        return None
    return getattr(ix, metric)


def indexes_of(model) -> dict[str, ItemIndexes]:
    """``{key: ItemIndexes}`` attached to ``model`` (empty when none)."""
    ix = getattr(model, "index_", None)
    if isinstance(ix, ItemIndexes):
        return {"model": ix}
    return dict(ix) if isinstance(ix, dict) else {}


# ---------------------------------------------------------------------------- growth
def grow(model) -> int:
    """Bring the indexes of ``model`` up to its items after ``add_items``; returns the items added.

    New items (rows past the indexed ones) are added to approximate indexes (``add``); exact
    indexes are rebuilt over the model's new array (a reference for ``ip``). Not safe while other
    threads search the same index: the caller serialises (the server holds its service lock).

    Raises
    ------
    BundleError
        The model's vectors changed in another way than by appended items (refit: call
        :func:`attach` again).
    """
    added = 0
    for key, comp, _ in targets(model):
        ix = getattr(comp, "index_", None)
        if not isinstance(ix, ItemIndexes) or ix.current(comp):
            continue
        v = comp._item_vectors()
        old = len(ix.vectors)
        if len(v) < old or not np.array_equal(v[:old], ix.vectors):
            raise BundleError(f"the {key} component's item vectors changed, not only grew: its index is stale; "
                              "rebuild it with recsys.retrieval.attach(model)")
        new_ids = np.arange(old, len(v), dtype=np.int64)
        new = v[old:]
        has = _nonzero(new)
        if ix.ip is not None:
            if isinstance(ix.ip, ExactIndex):
                ix.ip = ExactIndex("ip").build(v)  # a reference to the new array: nothing copied
            else:
                ix.ip.add(new, new_ids)
        if has.any():
            if ix.cos is None:  # every earlier item had a zero vector
                ix.cos = build_index(new[has], ids=new_ids[has], metric="cos", exact=ix.kind == "exact")
            else:
                ix.cos.add(new[has], new_ids[has])
        ix.zero = np.concatenate([ix.zero, new_ids[~has]])
        ix.vectors = v
        added = max(added, len(new_ids))
    info = getattr(model, "retrieval_", None)
    if isinstance(info, dict) and added:
        info["n_items"] = int(model.n_items_)
        for key, ix in indexes_of(model).items():
            for m in METRIC_DIRS:
                if getattr(ix, m) is not None:
                    info["indexes"][f"{key}.{m}"] = _describe(getattr(ix, m))
    return added


# ---------------------------------------------------------------------------- files
def save(model, directory: str | Path) -> list[Path]:
    """Write the approximate indexes of ``model`` under ``directory`` (a bundle's ``retrieval/``).

    Exact indexes are not written (rebuilt from the model's vectors in milliseconds at load), nor
    is anything when the indexes are not current (the model changed since :func:`attach`).

    Returns
    -------
    list of Path
        Every file written (``retrieval.json`` last); empty when nothing was saved.
    """
    indexes = indexes_of(model)
    if not indexes or any(ix.kind != "ivf" for ix in indexes.values()):
        return []
    comps = {key: comp for key, comp, _ in targets(model)}
    if set(comps) != set(indexes) or not all(indexes[k].current(comps[k]) for k in comps):
        return []
    d = Path(directory)
    files: list[Path] = []
    entries: dict[str, dict[str, str]] = {}
    for key, ix in indexes.items():
        entries[key] = {}
        for metric, sub in METRIC_DIRS.items():
            index = getattr(ix, metric)
            if index is not None:
                files += index.save(d / key / sub)
                entries[key][metric] = f"{key}/{sub}"
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "ivf",
                "n_items": int(model.n_items_), "indexes": entries}
    (d / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return [*files, d / MANIFEST]


def _read_manifest(d: Path) -> dict[str, Any]:
    return read_manifest(d / MANIFEST, FORMAT, FORMAT_VERSION, "the bundle's retrieval indexes are missing")


def _load_one(d: Path, manifest: dict, key: str, comp, metrics: tuple[str, ...]) -> ItemIndexes:
    entry = manifest.get("indexes", {}).get(key)
    if entry is None:
        raise BundleError(f"{d / MANIFEST} has no index of the {key} component; refit the bundle")
    v = comp._item_vectors()
    has = _nonzero(v)
    loaded: dict[str, VectorIndex | None] = {}
    for metric in METRIC_DIRS:
        if metric not in metrics or metric not in entry:
            loaded[metric] = None
            continue
        index = load_index(d / entry[metric])
        expected = len(v) if metric == "ip" else int(has.sum())
        if index.metric != metric or len(index) != expected or index.dim_ != v.shape[1]:
            raise BundleError(f"{d / entry[metric]}: a {index.metric} index of {len(index)} x {index.dim_} "
                              f"vectors, but the {key} component has {expected} x {v.shape[1]}")
        loaded[metric] = index
    for metric in metrics:
        if loaded[metric] is None and (metric == "ip" or has.any()):
            raise BundleError(f"{d / MANIFEST} lacks the {metric} index of the {key} component; refit the bundle")
    return ItemIndexes(v, loaded["ip"], loaded["cos"], np.flatnonzero(~has).astype(np.int64))


def limit_threads() -> None:
    """One OpenMP thread for faiss in a serving process (one query a request: threads only spin)."""
    import faiss

    faiss.omp_set_num_threads(1)
