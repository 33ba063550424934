"""What the HTTP API does, without HTTP: recommendations, similar items, new media items.

Route handlers in :mod:`serving.app` parse, call one method here and format; the same methods are
usable from Python. Raw ids arrive as strings from URLs: :meth:`RecommendationService.item_index`
and :meth:`user_index` match them against integer or string id maps.

Concurrency: requests read the model while ``register_item`` grows it; one lock serialises access
so no request sees half-grown arrays (scoring one user is sub-millisecond to a few ms, so the
lock is not the bottleneck on the 1-2 worker processes a bundle is served with).

Retrieval: the model's item indexes (:func:`recsys.retrieval.attach`, given at bundle loading:
exact, or approximate for large catalogs) answer recommendations and ``similar?by=cf``; a
registered item joins them at once (:func:`recsys.retrieval.grow`, under the lock, as every search
runs under it). ``health()`` says which kind serves and why.

Registered items are written to a :class:`~serving.registry.RegistrationLog` (when the service has
one) before they join the model, and :meth:`RecommendationService.replay_registrations` adds them
back when a server starts (:func:`build_service`) or reloads its bundle (:mod:`serving.reload`,
which retires the old service: a registration still in flight on it moves to the new one).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.errors import BundleError, ConfigError, DataError, MediaDecodeError, UnknownIdError
from recsys.models.content import l2_rows
from serving.batching import Batcher
from serving.bundle import Bundle
from serving.registry import RegistrationLog

SIMILAR_BY = ("fused", "audio", "video", "cf")
# feature blocks that answer by=audio / by=video, in order of preference
_BY_BLOCKS = {"audio": ("audio", "audio_ae", "av_audio"), "video": ("video_cnn", "video", "image", "video_desc", "av_video")}


class RegistrationDisabledError(ConfigError):
    """``register_item`` on a service without a media root (the HTTP API answers 403)."""


class RegistryWriteError(BundleError):
    """The registrations log could not be written (the HTTP API answers 503: the server's storage)."""


class DuplicateIdError(DataError):
    """``register_item`` with an item id the model already has (the HTTP API answers 409)."""


class RecommendationService:
    """Recommendations and item registration on a loaded :class:`~serving.bundle.Bundle`.

    Parameters
    ----------
    bundle : Bundle
    media_root : path, optional
        Directory new media files must live under (``register_item``); None disables registration.
    registry : RegistrationLog, optional
        Where registrations are persisted (and replayed from); None keeps them in memory only.
    """

    def __init__(self, bundle: Bundle, media_root: str | Path | None = None,
                 registry: RegistrationLog | None = None) -> None:
        self.bundle = bundle
        self.model = bundle.model
        self.media_root = None if media_root is None else Path(media_root).resolve()
        self.registry = registry
        self.n_registered = 0
        self._lock = threading.Lock()
        # known users' lists of requests waiting together are computed in one model call
        self.batcher = Batcher(self._recommend_known)
        self._unit_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # set by a hot reload (serving.reload): the service now served instead of this one
        self._successor: RecommendationService | None = None

    def retire(self, successor: "RecommendationService") -> None:
        """Mark this service replaced by ``successor`` (a hot reload; the caller holds ``_lock``).

        It keeps answering the requests that already hold it; a registration that reaches its
        commit step afterwards is made on ``successor`` instead, so no registered item is lost
        to a model that is no longer served.
        """
        self._successor = successor

    # ------------------------------------------------------------------ ids
    @property
    def interactions(self):
        return self.model.train_

    def user_index(self, raw: Any) -> int:
        """Index of a raw user id (``"42"`` matches 42); -1 when unknown."""
        return self.interactions.user_map.find(raw)

    def item_index(self, raw: Any) -> int:
        """Index of a raw item id (``"7"`` matches 7); -1 when unknown."""
        return self.interactions.item_map.find(raw)

    def _items_out(self, idx: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        keep = idx >= 0
        ids = self.interactions.item_ids[idx[keep]].tolist()
        return [{"item_id": i, "score": float(s)} for i, s in zip(ids, scores[keep])]

    # ------------------------------------------------------------------ recommendations
    def recommend_user(self, user_id: Any, n: int = 10, exclude_seen: bool = True) -> dict[str, Any]:
        """Top-``n`` for a user id; an unknown id gets the cold-start list and ``known_user=False``."""
        with self._lock:
            u = self.user_index(user_id)
            known = u >= 0 and self.model.knows_user(u)
            if u < 0:
                # an unknown user has no history and gets the model's cold-start answer
                # (popularity for the CF models)
                history = sp.csr_matrix((1, self.model.n_items_), dtype=np.float32)
                idx, scores = self.model.recommend(u, history, n=n, filter_seen=exclude_seen)
                return {"user_id": user_id, "known_user": False, "items": self._items_out(idx, scores)}
        # a user of the training data: the row comes from it, batched with other waiting requests
        idx, scores = self.batcher.submit(u, group=(int(n), bool(exclude_seen)))
        with self._lock:
            items = self._items_out(idx, scores)
        return {"user_id": user_id, "known_user": bool(known), "items": items}

    def _recommend_known(self, group: tuple[int, bool], users: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:class:`~serving.batching.Batcher`'s call: lists of users of the training data, one model call."""
        n, exclude_seen = group
        with self._lock:
            idx, scores = self.model.recommend(np.asarray(users, dtype=np.int64), None, n=n, filter_seen=exclude_seen)
        return list(zip(idx, scores))

    def recommend_history(self, items: list[Any], n: int = 10, exclude_seen: bool = True,
                          weights: list[float] | None = None) -> dict[str, Any]:
        """Top-``n`` for an ad-hoc history (a new or anonymous user), folded in without refitting.

        Item ids the model does not know are ignored and listed in ``unknown_items``.
        """
        if weights is not None and len(weights) != len(items):
            raise DataError(f"weights has {len(weights)} values for {len(items)} items")
        with self._lock:
            idx = np.array([self.item_index(i) for i in items], dtype=np.int64)
            unknown = [i for i, j in zip(items, idx) if j < 0]
            w = np.ones(len(items), np.float32) if weights is None else np.asarray(weights, np.float32)
            if (w < 0).any() or not np.isfinite(w).all():
                raise DataError("weights must be finite and non-negative")
            ok = idx >= 0
            row = sp.csr_matrix((w[ok], (np.zeros(ok.sum(), int), idx[ok])), shape=(1, self.model.n_items_),
                                dtype=np.float32)
            row.sum_duplicates()
            rec, scores = self.model.recommend(-1, row, n=n, filter_seen=exclude_seen)
            return {"items": self._items_out(rec, scores), "unknown_items": unknown, "n_history": int(ok.sum())}

    # ------------------------------------------------------------------ similar items
    def _unit_rows(self, by: str) -> tuple[np.ndarray, np.ndarray]:
        """Unit item vectors for ``by`` and which items have one (cached; dropped when items are added).

        Returns ``(unit (n_items, d) float32, has (n_items,) bool)``. ``has`` is False for items
        without the space's media (by=audio: no audio) or without CF factors (no interactions):
        they are not candidates, rather than ties at 0.0.
        """
        if by in self._unit_cache:
            return self._unit_cache[by]
        if by == "cf":
            comp = getattr(self.model, "bridge_", None) or self.model
            if not hasattr(comp, "item_factors_"):
                raise ConfigError(f"the {self.model.name} model has no item factors; use by=fused|audio|video")
            unit = l2_rows(comp.item_factors_)
            has = np.linalg.norm(unit, axis=1) > 0
        else:
            feats = self.bundle.item_features
            if feats is None:
                raise ConfigError(f"this bundle has no item features; only by=cf works for a {self.model.name} model")
            if by == "fused":
                if feats.fused is None:
                    raise ConfigError("this bundle's features have no fused matrix")
                unit = l2_rows(feats.fused)
                has = feats.mask_of("fused") & (np.linalg.norm(unit, axis=1) > 0)
            else:
                names = [b for b in _BY_BLOCKS[by] if b in feats.blocks]
                if not names:
                    raise ConfigError(f"this bundle has no {by} block (blocks: {sorted(feats.blocks)})")
                from features.fusion import modality_vectors

                # standardised per dimension as in the fused vector: raw blocks mix scales (MFCCs,
                # kHz, dB) and a few large dimensions would decide every cosine
                unit, has = modality_vectors(feats, names, self.bundle.fusion)
        self._unit_cache[by] = (unit, has)
        return unit, has

    def default_similar_by(self) -> str:
        """The space ``similar_items`` uses when none is asked for: fused content when the bundle
        has it, else CF factors (an ALS-only bundle), else the first content block it has."""
        feats = self.bundle.item_features
        if feats is not None and feats.fused is not None:
            return "fused"
        if hasattr(getattr(self.model, "bridge_", None) or self.model, "item_factors_"):
            return "cf"
        for by in ("audio", "video"):
            if feats is not None and any(b in feats.blocks for b in _BY_BLOCKS[by]):
                return by
        raise ConfigError(f"the {self.model.name} model has neither item factors nor item features: "
                          "similar items need an ALS, bridge, content or hybrid bundle")

    def similar_items(self, item_id: Any, n: int = 10, by: str | None = None) -> dict[str, Any]:
        """The ``n`` items most similar to ``item_id`` by content (fused, audio, video) or CF factors.

        ``by=None`` takes :meth:`default_similar_by`; the answer's ``by`` says which space was used.
        Only items that have a vector in that space are candidates (by=video: items with video), so
        the list is shorter than ``n`` when fewer exist; ``n_candidates`` says how many there are.
        """
        if by is None:
            by = self.default_similar_by()
        if by not in SIMILAR_BY:
            raise ConfigError(f"by must be one of {SIMILAR_BY}, got {by!r}")
        with self._lock:
            i = self.item_index(item_id)
            if i < 0:
                raise UnknownIdError(f"unknown item {item_id!r}")
            if by == "cf" and (found := self._similar_by_index(item_id, i, n)) is not None:
                return found
            x, has = self._unit_rows(by)
            if not has[i]:
                raise DataError(f"item {item_id!r} has no {by} vector (no such media, or no interactions for cf)")
            sims = np.where(has, x @ x[i], -np.inf).astype(np.float32)
            sims[i] = -np.inf
            from recsys.models.base import top_n

            idx, vals = top_n(sims[None, :], n)
            return {"item_id": item_id, "by": by, "items": self._items_out(idx[0], vals[0]),
                    "n_candidates": int(has.sum()) - 1}

    def _similar_by_index(self, item_id: Any, i: int, n: int) -> dict[str, Any] | None:
        """``similar?by=cf`` from the cosine index over the CF factors (the caller holds the lock);
        None when the model has no current one. Its items are exactly those with factors."""
        from recsys.retrieval import current_index

        comp = getattr(self.model, "bridge_", None) or self.model
        index = current_index(comp, "cos")
        if index is None:
            return None
        if i in comp.index_.zero:
            raise DataError(f"item {item_id!r} has no cf vector (no such media, or no interactions for cf)")
        idx, vals = index.search(comp._item_vectors()[i : i + 1], n, exclude=[np.array([i])])
        return {"item_id": item_id, "by": "cf", "items": self._items_out(idx[0], vals[0]),
                "n_candidates": len(index) - 1}

    # ------------------------------------------------------------------ new items
    def resolve_media(self, path: str) -> Path:
        """``path`` (relative to the media root, or absolute inside it) as an existing file.

        Raises
        ------
        ConfigError  registration is disabled (no media root)
        DataError    the path leaves the root, or is not a file
        """
        if self.media_root is None:
            raise RegistrationDisabledError("item registration is disabled: start the server with --media-root DIR")
        try:
            p = Path(path)
            full = (p if p.is_absolute() else self.media_root / p).resolve()
            outside = not full.is_relative_to(self.media_root)
            is_file = not outside and full.is_file()
        except (ValueError, OSError) as exc:  # NUL bytes, names too long, symlink loops: user input
            raise DataError(f"unusable media path {path!r}: {exc}") from None
        if outside:
            raise DataError(f"path {path!r} is outside the media root")
        if not is_file:
            raise DataError(f"no media file at {path!r} under the media root")
        return full

    def _new_item_id(self, raw: Any) -> Any:
        """``raw`` in the type of the item map: an integer map gets ints (``"42"`` -> 42), a string
        map gets strings, so the map never mixes types (bundles store ids in one typed column)."""
        ids = self.interactions.item_map.ids
        if ids.dtype.kind in "iu":
            if isinstance(raw, str):
                try:
                    return int(raw)
                except ValueError:
                    raise DataError(f"this bundle's item ids are integers; got {raw!r}") from None
            return raw
        if isinstance(raw, int) and len(ids) and isinstance(ids[0], str):
            return str(raw)
        return raw

    def register_item(self, item_id: Any, path: str) -> dict[str, Any]:
        """Extract a new item's features, give it bridge factors and make it recommendable at once.

        With a registry, the item is written to it first, so it survives a restart.

        Raises
        ------
        RegistrationDisabledError  no media root (a ConfigError)
        ConfigError       the model cannot score new items from media
        DuplicateIdError  the item id is already known (a DataError)
        DataError         bad path
        MediaDecodeError  the file does not decode
        """
        full = self.resolve_media(path)
        item_id = self._new_item_id(item_id)
        b = self.bundle
        if b.extractor is None or b.fusion is None or b.item_features is None:
            raise ConfigError(f"this bundle ({self.model.name}) has no extractor settings, fusion or features: "
                              "new items need a content model (bridge, content, hybrid) fitted with --features")
        if self.item_index(item_id) >= 0:
            raise DuplicateIdError(f"item {item_id!r} already exists")
        from features.extract import ExtractorConfig, extract_file

        try:  # slow part: outside the lock
            ff = extract_file(full, ExtractorConfig(**b.extractor))
        except MediaDecodeError as exc:  # name the file as the caller did, not by its server path
            raise MediaDecodeError(path, exc.reason.replace(str(full), path)) from None
        new = self._new_item_features(item_id, ff.blocks)
        with self._lock:
            successor = self._successor
            if successor is None:
                return self._commit_locked(item_id, path, ff, new)
        # retired by a hot reload while the media was extracted: register on the bundle now served
        # (with its own extractor and fusion settings, so the file is extracted again there)
        return successor.register_item(item_id, path)

    def _commit_locked(self, item_id: Any, path: str, ff, new) -> dict[str, Any]:
        """Persist a registration, then add the item to the model (caller holds the lock)."""
        if self.item_index(item_id) >= 0:
            raise DuplicateIdError(f"item {item_id!r} already exists")
        record = {"item_id": item_id, "path": path, "has_audio": bool(ff.has_audio), "has_video": bool(ff.has_video),
                  "duration_s": float(ff.duration_s) if np.isfinite(ff.duration_s) else None,
                  "blocks": {k: np.asarray(v, np.float32).tolist() for k, v in ff.blocks.items()}}
        if self.registry is not None:  # written before the model changes: on disk means served
            try:
                self.registry.append(record)
            except OSError as exc:  # disk full, permissions changed: the item is not added
                raise RegistryWriteError(f"could not persist the registration to {self.registry.path}: "
                                         f"{exc}; the item was not added") from None
        idx = self._add_locked(item_id, new)
        return {"item_id": item_id, "item_idx": idx, "has_audio": record["has_audio"],
                "has_video": record["has_video"], "duration_s": float(ff.duration_s), "cold": True}

    def _add_locked(self, item_id: Any, new) -> int:
        """Add one item's features to the model (caller holds the lock); returns its index."""
        from recsys.retrieval import grow

        self.model.add_items([item_id], new)
        grow(self.model)  # the indexes take the item's vectors: recommendable and similar at once
        self.bundle.item_features = _append_features(self.bundle.item_features, new)
        self._unit_cache.clear()
        self.n_registered += 1
        return int(self.item_index(item_id))

    def replay_registrations(self) -> int:
        """Add the items of the registry back (server start-up); returns how many were added.

        Items the bundle already has (it was refitted with them) are skipped.

        Raises
        ------
        BundleError
            The log is damaged, or its records do not fit this bundle (other feature blocks).
        """
        if self.registry is None:
            return 0
        records = self.registry.read()
        if records and (self.bundle.fusion is None or self.bundle.item_features is None):
            raise BundleError(f"{self.registry.path} holds {len(records)} registered items but this bundle "
                              f"({self.model.name}) cannot take new items; serve the bundle they were made for")
        added = 0
        with self._lock:
            for n, rec in enumerate(records, start=1):
                try:
                    item_id = self._new_item_id(rec["item_id"])
                    if self.item_index(item_id) >= 0:
                        continue
                    blocks = {k: np.asarray(v, np.float32) for k, v in rec["blocks"].items()}
                    self._add_locked(item_id, self._new_item_features(item_id, blocks))
                except (KeyError, TypeError, ValueError, DataError, MediaDecodeError) as exc:
                    raise BundleError(f"{self.registry.path}, record {n}: does not fit this bundle ({exc}); "
                                      "serve the bundle it was made for, or move the log away") from None
                added += 1
        return added

    def _new_item_features(self, item_id: Any, new_blocks: dict[str, np.ndarray]):
        """One-row ItemFeatures of a new item from its extracted blocks, fused like the catalog's."""
        from recsys.data import ItemFeatures

        feats = self.bundle.item_features
        blocks, masks = {}, {}
        for name, arr in feats.blocks.items():
            have = name in new_blocks
            blocks[name] = (np.asarray(new_blocks[name], np.float32) if have
                            else np.zeros(arr.shape[1], np.float32))[None, :]
            if have and blocks[name].shape[1] != arr.shape[1]:
                raise MediaDecodeError(str(item_id), f"block {name} has {blocks[name].shape[1]} dims, expected {arr.shape[1]}")
            masks[feats.block_masks[name]] = masks.get(feats.block_masks[name], True) and have
        present = {b: v for b, v in blocks.items() if masks[feats.block_masks[b]]}
        fused = self.bundle.fusion.transform_rows(present, {m: np.array([v]) for m, v in masks.items()})
        return ItemFeatures([item_id], blocks, {m: np.array([v]) for m, v in masks.items()},
                            block_masks=feats.block_masks, fused=fused)

    # ------------------------------------------------------------------ info
    def health(self) -> dict[str, Any]:
        x = self.interactions
        return {"status": "ok", "model": self.model.name, "n_users": int(x.n_users), "n_items": int(x.n_items),
                "avrec_version": self.bundle.manifest.get("avrec_version"),
                "bundle_created": self.bundle.manifest.get("created"),
                "registration": self.media_root is not None and self.bundle.extractor is not None,
                "registered_items": self.n_registered, "registrations_persisted": self.registry is not None,
                "retrieval": self.retrieval()}

    def retrieval(self) -> dict[str, Any]:
        """How recommendations are retrieved: ``kind`` (``exact``, ``ivf`` or ``none``), ``reason``,
        and the indexes (``{"<component>.<metric>": {kind, n, ...}}``)."""
        info = getattr(self.model, "retrieval_", None)
        if info is None:  # a model given without bundle loading (tests, the Python API)
            return {"kind": "none", "reason": "no indexes attached: dense scoring", "indexes": {}}
        return {"kind": info["kind"], "reason": info["reason"], "indexes": info["indexes"]}


def build_service(bundle, media_root: str | Path | None = None, token: str | None = None,
                  registry: str | Path | None | bool = True) -> RecommendationService:
    """The service of a loaded bundle, with its registrations log replayed.

    ``registry``: True is ``<bundle>.items.jsonl`` beside a bundle loaded from disk, a path puts the
    log there, None keeps registrations in memory only. When registration is possible (a media root
    and a token), the log must be writable.

    Raises
    ------
    BundleError
        The log is damaged, does not fit the bundle, or cannot be written.
    """
    from serving.registry import log_path_for

    if registry is True:
        registry = None if bundle.path is None else log_path_for(bundle.path)
    log = None if registry in (None, False) else RegistrationLog(registry)
    service = RecommendationService(bundle, media_root=media_root, registry=log)
    if service.retrieval()["kind"] == "ivf":
        from recsys.retrieval.model_index import limit_threads

        limit_threads()  # faiss: one OpenMP thread per process (one query a request)
    if log is not None and media_root is not None and token is not None:
        log.check_writable()
    service.replay_registrations()
    return service


def _append_features(a, b):
    """Rows of ``b`` appended to ItemFeatures ``a`` (same blocks)."""
    from recsys.data import ItemFeatures

    return ItemFeatures(
        np.concatenate([np.asarray(a.item_ids, dtype=object), np.asarray(b.item_ids, dtype=object)]),
        {k: np.concatenate([v, b.blocks[k]]) for k, v in a.blocks.items()},
        {k: np.concatenate([v, b.masks.get(k, np.zeros(b.n_items, bool))]) for k, v in a.masks.items()},
        block_masks=a.block_masks,
        fused=None if a.fused is None else np.concatenate([a.fused, b.fused]),
        provenance=a.provenance,
    )
