"""The ``avrec update`` job: a fitted bundle plus a log of new interactions -> an updated bundle,
without a full refit; and the drift report that says when a refit is due.

Steps: load the bundle (checksums verified) -> add back the items registered while it was served
(``<bundle>.items.jsonl``, so they keep their media) -> read the new log and put its ids on the
bundle's maps (unknown users and items appended) -> content rows of new items from ``--features``
(fused with the bundle's own fusion statistics) -> :func:`recsys.models.incremental.update_model`
-> drift -> a new bundle written like ``avrec fit`` writes one (temporary folder, checksums,
rename), its manifest recording the update.

Drift is measured against the **fitted state** (the last full fit): the share of interactions,
active users and warm items the fit never saw, summed over every update since, and the share of
top-20 slots that changed in this update for a sample of users the new log did not touch (their
factors stay; their lists move only because items moved). Past any of :data:`REFIT_THRESHOLDS` a
refit is recommended.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys.data.interactions import IdMap, Interactions
from recsys.errors import DataError
from recsys.jobs.load import LogSpec, load_log

#: drift past which ``avrec update`` recommends a full refit (README, "Incremental updates").
#: Measured with ``bench/bench_update.py --sweep`` (TikTok, ALS; a random share of train held out,
#: folded in by an update, scored on val against a fit on all of train): updates adding 5% / 10% /
#: 20% / 50% of the interactions reach 0.985 / 0.969 / 0.948 / 0.822 of the refit's recall@20
#: (ndcg@20 0.973 / 0.957 / 0.941 / 0.861). The list change is no staleness signal on its own:
#: TikTok's val part (4.9% new, recent) moves 11% of untouched users' top-20 slots while the update
#: matches the refit (random additions move 4% / 7% / 10% / 18%); 15% lies above that and where
#: random additions of 30-50% land, 10-18% behind a refit.
REFIT_THRESHOLDS = {
    # interactions (pairs) the last full fit never saw, share of all pairs now
    "interactions_added": 0.10,
    # users with interactions now and none at the fit (not measured: a judgement call)
    "new_users": 0.10,
    # items with interactions now and none at the fit (not measured: a judgement call)
    "new_items": 0.10,
    # top-20 slots that changed in this update, mean over sampled users the update did not touch
    "untouched_list_change": 0.15,
}
#: list length of the list-change drift
DRIFT_K = 20


@dataclass
class UpdateReport:
    """What ``avrec update`` did.

    Attributes
    ----------
    path : Path
        The bundle written.
    summary : dict
        :class:`recsys.models.incremental.UpdateSummary` as JSON, plus ``registered_items``
        (items of the registrations log added back first).
    drift : dict
        Drift against the fitted state (keys of :data:`REFIT_THRESHOLDS`, plus context).
    refit_due : bool
    reasons : list of str
        One line per threshold passed.
    seconds : dict
        ``load``, ``update`` (the model update alone), ``drift``, ``save``, ``total``.
    """

    path: Path
    summary: dict
    drift: dict
    refit_due: bool
    reasons: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"path": str(self.path), "summary": self.summary, "drift": self.drift, "refit_due": self.refit_due,
                "reasons": self.reasons, "seconds": self.seconds}


def update_bundle(bundle: str | Path, log: LogSpec, out: str | Path | None = None, features: str | None = None,
                  overwrite: bool = False, drift_users: int = 300, seed: int = 0,
                  log_fn: Callable[[str], None] = print) -> UpdateReport:
    """Fold the interactions of ``log`` into the bundle at ``bundle`` and write the result.

    Parameters
    ----------
    bundle : path
        A bundle written by ``avrec fit`` (or by an earlier update).
    log : LogSpec
        The new interactions (columns as ``avrec fit --log`` reads them).
    out : path, optional
        Where to write the updated bundle; default: replace ``bundle`` (atomically).
    features : str, optional
        An ``avrec features`` folder holding the media features of new items; they are fused with
        the bundle's fusion statistics (like items registered while serving). Items it lacks start
        without media.
    overwrite : bool
        Replace an existing bundle at ``out`` (an in-place update always replaces).
    drift_users : int
        Untouched users sampled for the list-change drift (0: not measured). Their lists are
        computed before and after the update (on TikTok ALS about 0.1 s per 300 users).
    seed : int
        Seeds that sample.
    log_fn : callable
        Receives progress lines.

    Returns
    -------
    UpdateReport
    """
    from recsys.models.incremental import update_model
    from serving.bundle import load_bundle, save_bundle

    t0 = time.perf_counter()
    src = Path(bundle)
    target = src if out is None else Path(out)
    if out is not None and target.exists() and not overwrite and target.resolve() != src.resolve():
        from recsys.errors import BundleError

        raise BundleError(f"{target} exists; pass --overwrite to replace it")
    b = load_bundle(src)
    registered = _replay_registrations(b, src)
    fitted = b.manifest.get("extra", {}).get("fitted") or _fitted_state(b)
    x = load_log(log)
    new = on_maps(x, b.model.train_)
    new_rows = _new_item_rows(b, features, new.item_ids[b.model.n_items_:].tolist()) if features else None
    t_load = time.perf_counter()

    sample = _untouched_sample(b.model.train_, new, drift_users, seed)
    before = b.model.recommend(sample, n=DRIFT_K)[0] if len(sample) else None
    t_before = time.perf_counter()
    if b.item_features is not None and new_rows is not None:
        b.item_features = _append_rows(b.item_features, new_rows)
    summary = update_model(b.model, new, b.item_features)
    # the item indexes were built on the old vectors: rebuild them by the fit's rule (a large
    # catalog gets a new approximate index, a small one exact search), so a saved bundle never
    # carries stale indexes (models fall back to dense scoring meanwhile)
    from recsys.jobs.fit import index_items

    index_items(b.model, log_fn=lambda line: None)
    t_update = time.perf_counter()
    change = None
    if before is not None:
        after = b.model.recommend(sample, n=DRIFT_K)[0]
        change = list_change(before, after)

    history = list(b.manifest.get("extra", {}).get("updates", []))
    record = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "log": str(Path(log.path).resolve()), "from": str(src.resolve()),
              "summary": {**summary.to_json(), "registered_items": registered}}
    drift = drift_since_fit(fitted, history + [record], b.model.train_, change, len(sample))
    reasons = refit_reasons(drift)
    record.update({"drift": drift, "refit_due": bool(reasons), "reasons": reasons})
    t_drift = time.perf_counter()
    extra = {**b.manifest.get("extra", {}), "fitted": fitted, "updates": history + [record]}
    path = save_bundle(b.model, target, item_features=b.item_features, fusion=b.fusion, extractor=b.extractor,
                       overwrite=True, extra=extra, text=b.text)
    t_save = time.perf_counter()
    seconds = {"load": t_load - t0, "update": t_update - t_before, "drift": (t_before - t_load) + (t_drift - t_update),
               "save": t_save - t_drift, "total": t_save - t0}
    log_fn(f"updated {b.model.name} with {summary.new_pairs} interactions ({summary.new_users} new users, "
           f"{summary.new_items} new items, {summary.warmed_items} items no longer cold) in {seconds['update']:.2f}s "
           f"({seconds['total']:.1f}s with load and save)")
    return UpdateReport(path, record["summary"], drift, bool(reasons), reasons,
                        {k: round(v, 4) for k, v in seconds.items()})


# ---------------------------------------------------------------------------- ids
def on_maps(x: Interactions, fitted: Interactions) -> Interactions:
    """The log ``x`` on the fitted id maps, unknown users and items appended (in ``x``'s map order).

    Raw ids are read in the type of the fitted map (text that spells an integer matches an integer
    map; integers match a text map by their text), so ``"42"`` in a CSV finds item 42.

    Returns
    -------
    Interactions on maps that begin with ``fitted``'s (what :func:`update_model` takes).
    """
    users = _like(x.user_ids, fitted.user_map)
    items = _like(x.item_ids, fitted.item_map)
    umap = _extended(fitted.user_map, users)
    imap = _extended(fitted.item_map, items)
    rows, cols, w, t = x.to_coo()
    if not len(rows):  # nothing new: an update that changes nothing
        import scipy.sparse as sp

        return Interactions(sp.csr_matrix((len(umap), len(imap)), dtype=np.float32), umap, imap,
                            None if t is None else np.zeros(0))
    return Interactions.from_arrays(users[rows], items[cols], w, t, user_ids=umap, item_ids=imap)


def _like(raw: np.ndarray, ids: IdMap) -> np.ndarray:
    """``raw`` ids in the type of the map ``ids`` (object array)."""
    vals = np.asarray(raw).tolist()
    if not len(ids):
        return np.asarray(vals, dtype=object)
    if ids.ids.dtype.kind in "iu":
        out = []
        for v in vals:
            try:
                out.append(int(v))
            except (TypeError, ValueError):
                raise DataError(f"the bundle's {ids.kind} ids are integers but the new log has {ids.kind} id {v!r}") \
                    from None
        return np.asarray(out, dtype=object)
    if isinstance(ids.ids[0], str):
        return np.asarray([v if isinstance(v, str) else str(v) for v in vals], dtype=object)
    return np.asarray(vals, dtype=object)


def _extended(m: IdMap, raw: np.ndarray) -> IdMap:
    """``m`` with the ids of ``raw`` it lacks appended, in ``raw``'s order."""
    unknown = m.indices(raw, missing="mark") < 0
    if not unknown.any():
        return m
    return IdMap(m.ids.tolist() + raw[unknown].tolist(), m.kind)


# ---------------------------------------------------------------------------- new items
def _replay_registrations(b, path: Path) -> int:
    """Items registered while ``path`` was served (its registrations log) added to the loaded
    bundle, so they enter the update with their media; returns how many."""
    from serving.registry import RegistrationLog, log_path_for

    reg = log_path_for(path)
    if not reg.exists():
        return 0
    from serving.service import RecommendationService

    return RecommendationService(b, registry=RegistrationLog(reg)).replay_registrations()


def _new_item_rows(b, features: str, new_ids: list):
    """Content rows of the new items from an ``avrec features`` folder, fused with the bundle's
    fusion statistics (None when the bundle's model reads no content or no item is new)."""
    from recsys.data import ItemFeatures

    if not new_ids or b.item_features is None or b.fusion is None:
        return None
    folder = ItemFeatures.load(features)
    ids = _like(np.asarray(new_ids, dtype=object), folder.item_map) if len(folder.item_map) else new_ids
    rows = folder.align(list(ids))
    missing = sorted(set(b.item_features.blocks) - set(rows.blocks))
    if missing:
        raise DataError(f"{features} lacks the feature blocks {missing} the bundle was fitted with; extract the new "
                        "items with the bundle's extractor settings")
    blocks = {k: rows.blocks[k] for k in b.item_features.blocks}
    masks = {m: rows.masks[m] for m in set(b.item_features.block_masks.values()) if m in rows.masks}
    fused = b.fusion.transform_rows(blocks, masks)
    return ItemFeatures(new_ids, blocks, masks, block_masks=b.item_features.block_masks, fused=fused,
                        provenance=b.item_features.provenance)


def _append_rows(a, rows):
    """ItemFeatures ``a`` with the rows of ``rows`` (same blocks) appended."""
    from recsys.data import ItemFeatures

    n = rows.n_items
    return ItemFeatures(
        np.concatenate([np.asarray(a.item_ids, dtype=object), np.asarray(rows.item_ids, dtype=object)]),
        {k: np.concatenate([v, rows.blocks[k]]) for k, v in a.blocks.items()},
        {k: np.concatenate([v, rows.masks.get(k, np.zeros(n, bool))]) for k, v in a.masks.items()},
        block_masks=a.block_masks, fused=None if a.fused is None else np.concatenate([a.fused, rows.fused]),
        provenance=a.provenance,
    )


# ---------------------------------------------------------------------------- drift
def _fitted_state(b) -> dict:
    """The counts of a bundle that comes straight from a fit (the reference of every drift)."""
    x = b.model.train_
    return {"created": b.manifest.get("created"), "interactions": int(x.nnz),
            "active_users": int((x.user_counts() > 0).sum()), "warm_items": int((x.item_counts() > 0).sum())}


def _untouched_sample(x: Interactions, new: Interactions, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` users with fitted interactions and none in ``new`` (seeded, sorted)."""
    if n <= 0:
        return np.zeros(0, np.int64)
    active = np.flatnonzero(x.user_counts() > 0)
    touched = new.active_users()
    users = active[~np.isin(active, touched)]
    if len(users) > n:
        users = np.sort(np.random.default_rng(seed).choice(users, size=n, replace=False))
    return users.astype(np.int64)


def list_change(before: np.ndarray, after: np.ndarray) -> float:
    """Mean share of a list's slots whose item left the list, over rows of two (b, k) top-k arrays
    (order within the list ignored; padding ``-1`` is not an item)."""
    if not len(before):
        return 0.0
    shares = []
    for a, c in zip(before, after):
        a, c = a[a >= 0], c[c >= 0]
        if len(a):
            shares.append(1.0 - len(np.intersect1d(a, c)) / len(a))
    return float(np.mean(shares)) if shares else 0.0


def drift_since_fit(fitted: dict, updates: list[dict], now: Interactions, list_change_now: float | None,
                    sampled: int) -> dict:
    """Drift of the model against its last full fit.

    Parameters
    ----------
    fitted : dict
        Counts at the fit (``interactions``, ``active_users``, ``warm_items``).
    updates : list of dict
        Every update record since the fit, this one last (``summary`` of each).
    now : Interactions
        The interactions after this update.
    list_change_now : float or None
        :func:`list_change` of this update's untouched sample (None: not measured).
    sampled : int
        Users in that sample.

    Returns
    -------
    dict with the keys of :data:`REFIT_THRESHOLDS` (shares in [0, 1]) and ``updates_since_fit``.
    """
    s = [u["summary"] for u in updates]
    added = sum(int(u["new_pairs"]) - int(u["repeated_pairs"]) for u in s)
    active = int((now.user_counts() > 0).sum())
    warm = int((now.item_counts() > 0).sum())
    return {
        "interactions_added": added / max(now.nnz, 1),
        "new_users": max(active - int(fitted["active_users"]), 0) / max(active, 1),
        "new_items": max(warm - int(fitted["warm_items"]), 0) / max(warm, 1),
        "untouched_list_change": list_change_now,
        "untouched_users_sampled": int(sampled),
        "updates_since_fit": len(updates),
        "fitted": fitted.get("created"),
    }


def refit_reasons(drift: dict, thresholds: dict | None = None) -> list[str]:
    """One line per drift at or past its threshold (empty: no refit due)."""
    th = thresholds or REFIT_THRESHOLDS
    words = {"interactions_added": "of the interactions were never seen by the fit",
             "new_users": "of the active users have interactions only from updates",
             "new_items": "of the items with interactions were cold or unknown at the fit",
             "untouched_list_change": f"of the top-{DRIFT_K} slots of users this update did not touch changed"}
    out = []
    for key, limit in th.items():
        v = drift.get(key)
        if v is not None and v >= limit:
            out.append(f"{v:.1%} {words[key]} (threshold {limit:.0%})")
    return out
