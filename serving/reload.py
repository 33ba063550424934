"""Hot reload: the bundle a server answers with, swapped atomically: :class:`Reloader`.

A request reads ONE :class:`Served` snapshot (the recommendation and search services of one
bundle) when it starts (:mod:`serving.app`'s dependencies) and uses it to the end, so a request
never mixes two bundles and one that started before a swap finishes on the bundle it started on.

:meth:`Reloader.reload` (``POST /admin/reload``, ``SIGHUP``) does everything slow off the request
path, in the caller's thread, while the old snapshot keeps answering:

1. load the bundle and verify every file's checksum (:func:`serving.bundle.load_bundle`);
2. build its service: the registrations log is replayed, exactly as ``avrec serve`` does at
   start-up (see below); build the search index;
3. answer two probe requests on it (a known user's list and a cold-start list), so a bundle whose
   model cannot score is refused here rather than on a client's request;
4. swap: under the old service's lock, replay registrations committed since step 2 (items already
   there are skipped), point ``current`` at the new snapshot (one reference assignment) and retire
   the old service, which hands any registration still waiting for its lock to the new one.

A failure anywhere in 1-3 leaves the old snapshot serving and raises :class:`ReloadError` (HTTP
409) with the reason. One reload runs at a time; a second one meanwhile is refused (409).

**Registrations log on reload.** A reload serves what a restart on the same path would: the log
of the bundle being loaded is replayed, i.e. ``<bundle>.items.jsonl`` beside it (or the log path the
app was created with). Reloading the served path keeps every registered item (a refitted bundle
that already has an item skips it); switching to another bundle path serves that bundle's own log,
and items registered on the old one stay in the old one's log (refit with them, or move the log
beside the new bundle). Nothing is ever written into a bundle directory.

Memory: the old and the new bundle are both held while the new one loads; the old one is freed
when its last in-flight request ends.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.errors import AvrecError, ConfigError
from serving.query_cache import QueryCache
from serving.search_service import SearchService
from serving.service import RecommendationService, build_service

log = logging.getLogger("avrec.serving")

#: a user id no bundle has, for the cold-start probe of a freshly loaded bundle
_PROBE_USER = "\x00avrec-reload-probe"


class ReloadError(ConfigError):
    """A reload was refused: the bundle did not load or verify, or another reload is running (HTTP 409)."""


def bundle_checksum(path: Path | None) -> str | None:
    """SHA-256 of a bundle's manifest, which lists every file's own SHA-256: one id of its content."""
    if path is None:
        return None
    from serving.bundle import MANIFEST

    return hashlib.sha256((Path(path) / MANIFEST).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Served:
    """What one request is answered with: the services of one bundle, and where it came from."""

    service: RecommendationService
    search: SearchService
    path: Path | None
    checksum: str | None
    generation: int = 0  # 0: the bundle the server started with; +1 per swap
    loaded_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        """Path, checksum, model, sizes and load time of this snapshot, as JSON values."""
        s = self.service
        manifest = s.bundle.manifest
        return {"path": None if self.path is None else str(self.path), "checksum": self.checksum,
                "model": s.model.name, "n_users": int(s.interactions.n_users), "n_items": int(s.interactions.n_items),
                "registered_items": int(s.n_registered), "created": manifest.get("created"),
                "avrec_version": manifest.get("avrec_version"), "retrieval": s.retrieval()["kind"],
                "generation": self.generation,
                "loaded_at": round(self.loaded_at, 3)}


class Reloader:
    """Holds the served snapshot and replaces it with a freshly loaded bundle on request.

    Parameters
    ----------
    media_root : path, optional
        Media root of every service it builds (``POST /items``, query by clip).
    token : str, optional
        The server's write token (a writable registrations log is checked only when one is set).
    registry : path, True or None
        The registrations log of every service it builds: True is ``<bundle>.items.jsonl`` beside
        the bundle being loaded, a path is that file, None keeps registrations in memory.
    cache : QueryCache, optional
        Shared by every search service it builds (keys carry the index version).
    workers : int
        Worker processes of the server; with more than one, :meth:`reload` is refused (each worker
        would reload alone): SIGHUP to the parent process replaces the workers instead.
    exact : bool
        Load every bundle with exact retrieval (``avrec serve --exact``).
    """

    def __init__(self, media_root: str | Path | None = None, token: str | None = None,
                 registry: str | Path | None | bool = True, cache: QueryCache | None = None,
                 workers: int = 1, exact: bool = False) -> None:
        self.media_root = media_root
        self.token = token
        self.registry = registry
        self.cache = QueryCache() if cache is None else cache
        self.workers = workers
        self.exact = exact
        self.current: Served | None = None
        self.reloads_ok = 0
        self.reloads_failed = 0
        self._reload_lock = threading.Lock()

    # ------------------------------------------------------------------ start
    def start(self, bundle) -> Served:
        """Serve ``bundle`` (a path, a loaded Bundle, or a built RecommendationService) first.

        A service is served as is, and later reloads keep its media root and registrations log.
        """
        from serving.bundle import Bundle, load_bundle

        if isinstance(bundle, RecommendationService):
            service = bundle
            self.media_root = service.media_root
            self.registry = _registry_setting(service)
        else:
            loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, exact=self.exact or None)
            service = self._build_service(loaded)
        path = service.bundle.path
        served = self._snapshot(service, None if path is None else Path(path).resolve(), generation=0)
        self.current = served
        return served

    # ------------------------------------------------------------------ reload
    def reload(self, path: str | Path | None = None) -> dict[str, Any]:
        """Load, verify and swap in the bundle at ``path`` (default: the served path again).

        Returns
        -------
        dict
            ``{"previous": describe(), "current": describe(), "seconds": float}``

        Raises
        ------
        ReloadError
            The bundle failed to load, verify or answer (the old one keeps serving), another
            reload is running, or the server has several workers.
        """
        old = self.current
        if old is None:
            raise ReloadError("the server has not finished starting; try again")
        if self.workers > 1:
            raise ReloadError(f"this server runs {self.workers} worker processes and a request reaches one of them: "
                              "send SIGHUP to the parent process instead (uvicorn replaces the workers one at a "
                              "time, each loading the bundle the server was started with)")
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadError("another reload is in progress; try again when it has finished")
        try:
            t0 = time.perf_counter()
            target = path
            try:
                target = self._target(path, old)
                new = self._load(target, old.generation + 1)
                self._swap(old, new)
                settle_heap()  # the old bundle's cycles are collected; the new one is frozen
            except Exception as exc:  # any failure, even a bug in a model's loader, must leave the old one serving
                self.reloads_failed += 1
                if not isinstance(exc, AvrecError):
                    log.exception("reloading %s failed", target)
                reason = str(exc) if isinstance(exc, AvrecError) else f"{type(exc).__name__}: {exc}"
                raise ReloadError(f"reload of {target} refused, still serving {old.path} "
                                  f"(checksum {(old.checksum or '-')[:12]}): {reason}") from None
            self.reloads_ok += 1
            out = {"previous": old.describe(), "current": new.describe(), "seconds": round(time.perf_counter() - t0, 3)}
            # warning, not info: a swapped model is what an operator reads the log for
            log.warning("reloaded %s (checksum %s) in %.2fs", new.path, (new.checksum or "-")[:12], out["seconds"])
            return out
        finally:
            self._reload_lock.release()

    def _target(self, path: str | Path | None, old: Served) -> Path:
        if path is None:
            if old.path is None:
                raise ReloadError("the served bundle was not loaded from a path: name the bundle to load")
            return old.path
        try:
            return Path(path).expanduser().resolve()
        except (ValueError, OSError, RuntimeError) as exc:  # NUL bytes, symlink loops, no such ~user
            raise ReloadError(f"unusable bundle path {str(path)!r}: {exc}") from None

    def _load(self, path: Path, generation: int) -> Served:
        """Steps 1-3 of the module docstring: a complete snapshot of the bundle at ``path``, or an error."""
        from threadpoolctl import threadpool_limits

        from serving.bundle import load_bundle

        service = self._build_service(load_bundle(path, exact=self.exact or None))
        served = self._snapshot(service, path, generation)
        # a known user's list and a cold-start list: a model that loads but cannot score fails here
        users = service.interactions.user_ids
        if len(users):
            service.recommend_user(users[0].item() if hasattr(users[0], "item") else users[0], n=1)
        service.recommend_user(_PROBE_USER, n=1)
        # a model type the old bundle did not have may have loaded a BLAS of its own: one thread
        # per call, as the lifespan set for the first bundle (serving.app)
        threadpool_limits(limits=1, user_api="blas")
        return served

    def _build_service(self, bundle) -> RecommendationService:
        return build_service(bundle, media_root=self.media_root, token=self.token, registry=self.registry)

    def _snapshot(self, service: RecommendationService, path: Path | None, generation: int) -> Served:
        search = SearchService(service, cache=self.cache)
        search.warm()
        return Served(service, search, path, bundle_checksum(path), generation)

    def _swap(self, old: Served, new: Served) -> None:
        """Step 4: catch up on registrations, publish ``new``, retire ``old`` (under its lock).

        Holding the old service's lock means no registration is between its log write and its
        model update; one waiting for the lock finds the service retired and goes to ``new``.
        """
        with old.service._lock:
            # registrations the old service committed while the new one loaded are in the log (a
            # registration is written before it joins the model): replay skips what ``new`` has
            new.service.replay_registrations()
            self.current = new  # the swap: one reference, read once per request
            old.service.retire(new.service)


def settle_heap() -> None:
    """Collect cycles once, then move every surviving object out of the garbage collector's sight.

    A served bundle and the web stack are ~170k objects the cyclic collector tracks; a full
    collection walks them all (50-130 ms on 2 busy cores, TikTok search bench), and Python
    starts one every few thousand requests: each was a p99 spike of its own. ``gc.freeze()`` puts
    the survivors in a permanent generation that collections skip (the CPython documentation
    recommends it after start-up); reference counting still frees them. Called after start-up
    and after each reload (``gc.unfreeze()`` first, so the retired bundle's cycles are freed).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _registry_setting(service: RecommendationService) -> str | Path | None | bool:
    """The ``registry`` argument that rebuilds ``service``'s registrations log for another bundle."""
    from serving.registry import log_path_for

    if service.registry is None:
        return None
    path = service.bundle.path
    if path is not None and Path(service.registry.path).resolve() == log_path_for(path):
        return True
    return service.registry.path
