"""The HTTP API: FastAPI routes over :class:`~serving.service.RecommendationService`.

Routes parse, call one service method and format; every decision lives in the service. Ids arrive
as strings from URLs (or strings/ints in JSON bodies); the service matches them to the bundle's
integer or string id maps.

Errors: every avrec error a request can cause is mapped to a 4xx with ``{"detail": reason}`` by one
handler (:data:`ERROR_STATUS`); invalid parameters are FastAPI's 422 whose ``detail`` lists the
offending field (``loc``). A 5xx means a bug.

Endpoints are plain ``def`` functions on purpose: FastAPI runs them in its thread pool, so a
feature extraction (``POST /items``, ~0.1-1 s of decoding) never blocks the event loop that
serves the other requests; the extraction runs outside the service's lock, so requests keep
being answered meanwhile (scoring itself is serialised by that lock: ~1 ms a request for ALS).

Write routes (``POST /items``) need a token: the server is started with ``--token`` or
``$AVREC_TOKEN`` and clients send ``Authorization: Bearer <token>``. Without a configured token
write routes are off (403); a missing or wrong token is 401.

Items registered with ``POST /items`` are appended to ``<bundle>.items.jsonl`` beside the bundle
(:mod:`serving.registry`) and replayed when the server starts.

Hot reload (:mod:`serving.reload`): ``POST /admin/reload`` (a write route: token) or ``SIGHUP`` to
``avrec serve`` loads and verifies a bundle (default: the served path again) off the request
path and swaps it in atomically; every request reads one snapshot (:class:`~serving.reload.Served`)
through the dependencies below, so it never mixes two bundles. A bundle that fails to load,
verify or answer leaves the old one serving: 409 with the reason.

``GET /metrics`` answers in the Prometheus text format (:mod:`serving.metrics`).

``/docs`` (Swagger UI) and ``/redoc`` work offline: their scripts, stylesheet and icon are served
by the app itself under ``/docs/assets`` from the files the ``fastapi-offline`` package ships
(FastAPI's defaults load them from a CDN, a blank page without the internet).

Start it with ``avrec serve --bundle B`` or :func:`serve`; :func:`create_app` builds the app for
tests and for other ASGI servers.
"""

from __future__ import annotations

import hmac
import math
import os
from contextlib import asynccontextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from recsys import __version__
from recsys.errors import AvrecError, ConfigError, DataError, MediaDecodeError, QueryError, UnknownIdError
from serving.limits import BodyLimitMiddleware
from serving.metrics import MULTIPROC_ENV, MetricsMiddleware, ServingMetrics, multiprocess_dir
from serving.query_cache import DEFAULT_SIZE, QueryCache
from serving.reload import Reloader, ReloadError, Served, settle_heap
from serving.search import DEFAULT_USER_WEIGHT, MAX_QUERY_CHARS
from serving.search_service import SearchService
from serving.service import (DuplicateIdError, RecommendationService, RegistrationDisabledError, RegistryWriteError,
                             build_service)

TOKEN_ENV = "AVREC_TOKEN"  # environment variable holding the write token of `avrec serve`
BUNDLE_ENV = "AVREC_SERVE_BUNDLE"  # multi-worker servers: the bundle each worker loads
WORKERS_ENV = "AVREC_SERVE_WORKERS"  # multi-worker servers: how many there are
EXACT_ENV = "AVREC_SERVE_EXACT"  # multi-worker servers: "1" when started with --exact
#: seconds a replacement worker may take to load its bundle before uvicorn's rolling restart (SIGHUP
#: with several workers) gives up and keeps the old worker; uvicorn's default of 5 s is less than
#: a large bundle takes on a busy machine
WORKER_START_TIMEOUT = 120

DOCS_ASSETS_URL = "/docs/assets"  # where the Swagger UI and ReDoc files are served

MAX_N = 1000  # longest list a request may ask for
MAX_HISTORY = 10_000  # items in an ad-hoc history

# Most specific first: the handler takes the first class the error is an instance of.
ERROR_STATUS: tuple[tuple[type[AvrecError], int], ...] = (
    (RegistryWriteError, 503),  # the server could not persist a registration (its disk, not the request)
    (UnknownIdError, 404),  # no such item (unknown *users* are not an error: they get cold start)
    (DuplicateIdError, 409),  # POST /items with an id the bundle already has
    (RegistrationDisabledError, 403),  # POST /items on a server started without --media-root
    (MediaDecodeError, 422),  # the file exists but is not decodable media
    (QueryError, 422),  # empty, overlong or meaningless search query
    (ConfigError, 409),  # valid request this bundle cannot answer (no audio block, no extractor); a refused reload
    (DataError, 400),  # bad media path, inconsistent values
    (AvrecError, 400),
)

RawId = Annotated[str | int, Field(description="raw id; strings match integer ids too (\"42\" is 42)")]


# ---------------------------------------------------------------------------- schemas
class SimilarBy(str, Enum):
    """What item similarity is measured on."""

    fused = "fused"
    audio = "audio"
    video = "video"
    cf = "cf"


class MediaBy(str, Enum):
    """Which vectors a query clip is compared on."""

    fused = "fused"
    audio = "audio"
    video = "video"


class ErrorOut(BaseModel):
    detail: str = Field(description="what is wrong and what to do about it")


class ScoredItem(BaseModel):
    item_id: str | int
    score: float


class HealthOut(BaseModel):
    status: str
    model: str = Field(description="model class name of the bundle (als, bridge, hybrid, ...)")
    n_users: int
    n_items: int = Field(description="items, including those registered since the server started")
    avrec_version: str | None
    bundle_created: str | None
    registration: bool = Field(description="whether POST /items is enabled (a token and --media-root are set)")
    registered_items: int = Field(description="items added with POST /items, including those replayed at start-up")
    registrations_persisted: bool = Field(description="whether registered items are kept on disk beside the bundle")
    bundle_checksum: str | None = Field(description="SHA-256 of the served bundle's manifest (changes on a reload "
                                                    "to another bundle); null for a bundle not loaded from disk")
    retrieval: dict[str, Any] = Field(description="how lists are retrieved: kind (exact, ivf: approximate faiss "
                                                  "index, none: dense scoring), the reason, and the indexes")


class ExplainedItem(ScoredItem):
    explanation: dict[str, Any] | None = Field(
        None, description="with explain=true: cf (history items behind the CF score), similar (nearest history "
                          "item per modality), ranker (per-group contributions; null until the ranker provides them)")


class UserRecommendationsOut(BaseModel):
    user_id: str
    known_user: bool = Field(description="false: the user had no training interactions; the list is cold start")
    items: list[ExplainedItem] = Field(description="best first; at most n")


class HistoryIn(BaseModel):
    """An ad-hoc history: the items a new or anonymous user interacted with."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"items": ["i0001", "i0007"], "n": 10}]})

    items: list[RawId] = Field(max_length=MAX_HISTORY, description="item ids; unknown ones are reported back")
    n: int = Field(10, ge=1, le=MAX_N)
    exclude_seen: bool = Field(True, description="leave the history's items out of the list")
    explain: bool = Field(False, description="add an explanation to every item")
    weights: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        None, max_length=MAX_HISTORY, description="one non-negative weight per item (default 1 each)")

    @field_validator("weights")
    @classmethod
    def _one_weight_per_item(cls, weights: list[float] | None, info: ValidationInfo) -> list[float] | None:
        items = info.data.get("items")  # absent when items itself failed validation
        if weights is not None and items is not None and len(weights) != len(items):
            raise ValueError(f"weights has {len(weights)} values for {len(items)} items")
        return weights


class HistoryRecommendationsOut(BaseModel):
    items: list[ExplainedItem]
    unknown_items: list[str | int] = Field(description="history items the model does not know (ignored)")
    n_history: int = Field(description="history items used")


class SimilarItemsOut(BaseModel):
    item_id: str
    by: SimilarBy = Field(description="the space the similarity was measured in (the default depends on the bundle)")
    items: list[ScoredItem]
    n_candidates: int = Field(description="items with a vector in that space (by=video: items with video), the "
                                          "item itself excluded: the most `items` can hold")


class SearchItem(BaseModel):
    item_id: str | int
    score: float = Field(description="the order: relevance, mixed with the user's score when a user is given")
    relevance: float = Field(description="cosine of the query with the item's words and/or projected media")
    user_score: float | None = Field(description="percentile (0-1] of the user's recommendation score among "
                                                 "the relevant items; null without a known user")
    matched_by: str = Field(description="text, media (no text: its media projected into words) or text+media")


class SearchOut(BaseModel):
    query: str
    user_id: str | None
    known_user: bool = Field(description="false: no user given or unknown: relevance only")
    user_weight: float = Field(description="share of the user's score in the order (0 without a known user)")
    items: list[SearchItem]


class SearchByMediaIn(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"path": "clips/query.mp4", "by": "fused", "n": 10}]})

    path: str = Field(min_length=1, max_length=4096, description="media file, relative to the server's --media-root")
    by: MediaBy = Field(MediaBy.fused, description="compare fused, audio or video vectors")
    n: int = Field(10, ge=1, le=MAX_N)


class SearchByMediaOut(BaseModel):
    path: str
    by: MediaBy
    has_audio: bool
    has_video: bool
    items: list[ScoredItem] = Field(description="the clip is not registered; every catalog item may appear")


class RegisterItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"item_id": "i9001", "path": "new/clip.mp4"}]})

    item_id: Annotated[str, Field(min_length=1, max_length=256)] | int
    path: str = Field(min_length=1, max_length=4096, description="media file, relative to the server's --media-root")


class RegisteredItemOut(BaseModel):
    item_id: str | int
    item_idx: int = Field(description="the item's index in the model")
    has_audio: bool
    has_video: bool
    duration_s: float
    cold: bool = Field(description="true: scored from its media until the model is refitted")


class ReloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"path": "/srv/bundles/b2"}]})

    path: str | None = Field(None, min_length=1, max_length=4096,
                             description="bundle directory on the server; default: the served bundle's path again")


class BundleOut(BaseModel):
    path: str | None
    checksum: str | None = Field(description="SHA-256 of the bundle's manifest")
    model: str
    n_users: int
    n_items: int
    registered_items: int = Field(description="items of its registrations log replayed or added since")
    created: str | None
    avrec_version: str | None
    generation: int = Field(description="0: the bundle the server started with; +1 per reload")
    loaded_at: float = Field(description="Unix time")


class ReloadOut(BaseModel):
    previous: BundleOut
    current: BundleOut
    seconds: float = Field(description="time to load, verify and swap the bundle")


# ---------------------------------------------------------------------------- app
# Dependencies that only read app state are async: FastAPI runs a plain ``def`` dependency in the
# thread pool, one thread hop per dependency per request (on 2 busy cores that cost the ALS route
# about 40% of its throughput once the search dependency joined the service one).
# _service and _search both read the snapshot through _served, which FastAPI evaluates once per
# request: a route that uses both never gets them from two bundles across a hot reload.
async def _served(request: Request) -> Served:
    return request.app.state.reloader.current


CurrentBundle = Annotated[Served, Depends(_served)]


async def _service(served: CurrentBundle) -> RecommendationService:
    return served.service


async def _search(served: CurrentBundle) -> SearchService:
    return served.search


Service = Annotated[RecommendationService, Depends(_service)]
Search = Annotated[SearchService, Depends(_search)]
Explain = Annotated[bool, Query(description="add an explanation to every item (CF history items, nearest "
                                            "history item per modality)")]
N = Annotated[int, Query(ge=1, le=MAX_N, description="list length")]
_ERRORS = {404: {"model": ErrorOut}, 400: {"model": ErrorOut}, 409: {"model": ErrorOut}}
_bearer = HTTPBearer(auto_error=False, description="the token the server was started with (--token / $AVREC_TOKEN)")


class TokenError(AvrecError):
    """A write route was called without the right token (401), or with none configured (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def _require_token(request: Request,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Dependency of every write route: the configured token, sent as ``Authorization: Bearer``."""
    expected = request.app.state.token
    if expected is None:
        raise TokenError(f"write routes are off: start the server with --token or ${TOKEN_ENV} to enable them", 403)
    given = credentials.credentials if credentials is not None and credentials.scheme.lower() == "bearer" else None
    # constant-time comparison: the answer time must not tell how much of a guess was right
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise TokenError("missing or wrong token: send the server's token as 'Authorization: Bearer <token>'", 401)


WriteAccess = Depends(_require_token)


def create_app(bundle, media_root: str | Path | None = None, token: str | None = None,
               registry: str | Path | None | bool = True, query_cache: int = DEFAULT_SIZE,
               workers: int = 1, exact: bool = False) -> FastAPI:
    """The FastAPI app serving ``bundle``.

    Parameters
    ----------
    bundle : path, Bundle or RecommendationService
        A bundle directory is loaded (and verified) in the app's lifespan, i.e. when the server
        starts, not here; a loaded :class:`~serving.bundle.Bundle` is used as is; a service (from
        :func:`build_service`, registrations replayed) is served as is, ``media_root`` and
        ``registry`` then being its own.
    media_root : path, optional
        Enables ``POST /items`` for media files under this directory.
    token : str, optional
        The bearer token write routes require; None turns write routes off (403).
    registry : path, True or None
        The registrations log: True (default) is ``<bundle>.items.jsonl`` beside a bundle loaded
        from disk, a path puts it there, None keeps registrations in memory only. Bundles swapped
        in by a reload get theirs the same way (:mod:`serving.reload`).
    query_cache : int
        Searches whose relevant items are cached (LRU; 0 turns the cache off).
    workers : int
        Worker processes of the server this app runs in (``POST /admin/reload`` is refused with
        more than one: SIGHUP to the parent process reloads them all).
    exact : bool
        Exact retrieval for every bundle this app loads, even one with approximate indexes.
    """
    from serving.bundle import Bundle

    if not isinstance(bundle, (Bundle, RecommendationService, str, os.PathLike)):
        raise ConfigError(f"bundle must be a path, a Bundle or a RecommendationService, got {type(bundle).__name__}")
    if token is not None and len(token) < 8:
        raise ConfigError("the token must have at least 8 characters (use a long random string)")

    reloader = Reloader(media_root=media_root, token=token, registry=registry, cache=QueryCache(query_cache),
                        workers=workers, exact=exact)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from starlette.concurrency import run_in_threadpool
        from threadpoolctl import threadpool_limits

        # loading, replaying registrations and building the search index (which also loads the
        # libraries queries use) happen before the BLAS limit below: see SearchService.warm()
        await run_in_threadpool(reloader.start, bundle)
        settle_heap()
        # One BLAS thread per call while serving. A request scores one user: (1, f) x (f, n_items)
        # products that are memory-bound, where BLAS threads only add hand-off and, on a busy
        # machine, spinning (TikTok, 2 busy cores: ALS 18 ms a request with 2 BLAS threads, 1.4 ms
        # with 1; hybrid 16 -> 9 ms). Requests run in parallel in the thread pool instead.
        # OpenBLAS's setting is process-wide, so it is restored on exit.
        limits = threadpool_limits(limits=1, user_api="blas")
        try:
            yield
        finally:
            limits.restore_original_limits()

    app = FastAPIOffline(
        title="avrec",
        version=__version__,
        summary="Audio+video recommendations: per-user lists, ad-hoc histories, similar items, new media items.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS_URL,
        # no badge image from Swagger's online validator: the docs load nothing from elsewhere
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.reloader = reloader
    app.state.metrics = ServingMetrics(reloader)
    reloader.cache.on_lookup = app.state.metrics.cache_lookup
    app.state.token = token
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the offending input, and Python's JSON parser accepts NaN,
        # Infinity and 1e999: echoing those back is not valid JSON and turned a 422 into a 500
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(AvrecError)
    async def avrec_error(request: Request, exc: AvrecError) -> JSONResponse:
        if isinstance(exc, TokenError):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)
        status = next(code for cls, code in ERROR_STATUS if isinstance(exc, cls))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.get("/health", response_model=HealthOut, tags=["info"])
    def health(served: CurrentBundle, request: Request) -> dict[str, Any]:
        """Model, catalog size, whether registration is on and how many items were registered."""
        out = served.service.health()
        out["registration"] = out["registration"] and request.app.state.token is not None
        out["bundle_checksum"] = served.checksum
        return out

    @app.get("/users/{user_id}/recommendations", response_model=UserRecommendationsOut, tags=["recommendations"],
             response_model_exclude_unset=True, responses=_ERRORS)
    def user_recommendations(service: Service, search: Search, user_id: str, n: N = 10,
                             exclude_seen: Annotated[bool, Query(description="leave out the user's training items")] = True,
                             explain: Explain = False) -> dict[str, Any]:
        """Top-n for a user. An unknown user gets the cold-start list with `known_user: false`."""
        out = service.recommend_user(user_id, n=n, exclude_seen=exclude_seen)
        if explain:
            out["items"] = search.explain_items(user_id, out["items"])
        return out

    @app.post("/recommendations", response_model=HistoryRecommendationsOut, tags=["recommendations"],
              response_model_exclude_unset=True, responses=_ERRORS)
    def history_recommendations(service: Service, search: Search, body: HistoryIn) -> dict[str, Any]:
        """Top-n for an ad-hoc history (new or anonymous users), folded in without refitting."""
        out = service.recommend_history(body.items, n=body.n, exclude_seen=body.exclude_seen, weights=body.weights)
        if body.explain:
            out["items"] = search.explain_items(None, out["items"], history=body.items)
        return out

    @app.get("/items/{item_id}/similar", response_model=SimilarItemsOut, tags=["items"], responses=_ERRORS)
    def similar_items(service: Service, item_id: str, n: N = 10,
                      by: Annotated[SimilarBy | None, Query(
                          description="content (fused, audio, video) or CF factors; default: fused when the "
                                      "bundle has content, else cf")] = None,
                      ) -> dict[str, Any]:
        """The n items most similar to an item (itself excluded), by cosine similarity; `by` in the
        answer says which space was used."""
        return service.similar_items(item_id, n=n, by=None if by is None else by.value)

    @app.post("/items", response_model=RegisteredItemOut, status_code=201, tags=["items"],
              dependencies=[WriteAccess],
              responses={**_ERRORS, 401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 503: {"model": ErrorOut}})
    def register_item(service: Service, body: RegisterItemIn) -> dict[str, Any]:
        """Register a new media item: extract its features, predict its CF factors, recommendable at once.
        Needs `Authorization: Bearer <token>`. The item is kept beside the bundle and survives restarts.

        400 bad path (outside the media root, missing), 401 missing or wrong token, 403 write routes off
        (no token configured) or registration disabled (no --media-root), 409 duplicate id or a bundle
        without extractor settings, 422 invalid body or media that does not decode, 503 the
        registration could not be saved.
        """
        return service.register_item(body.item_id, body.path)

    @app.get("/search", response_model=SearchOut, tags=["search"], responses={**_ERRORS, 422: {"model": ErrorOut}})
    def search_items(search: Search,
                     q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="the words to search for")],
                     user: Annotated[str | None, Query(description="mix in this user's recommendation scores")] = None,
                     n: N = 10,
                     user_weight: Annotated[float, Query(ge=0, le=1, description="share of the user's score")] = DEFAULT_USER_WEIGHT,
                     ) -> dict[str, Any]:
        """Items for a text query: relevance to the item's words, or to its media projected into words when it
        has none; with a known user, mixed with that user's recommendation scores.

        422 empty, overlong or meaningless query; 409 a bundle without text.
        """
        return search.search(q, user_id=user, n=n, user_weight=user_weight)

    @app.post("/search/by-media", response_model=SearchByMediaOut, tags=["search"],
              responses={**_ERRORS, 403: {"model": ErrorOut}})
    def search_by_media(search: Search, body: SearchByMediaIn) -> dict[str, Any]:
        """Items similar to a media file under --media-root (features extracted, the clip NOT registered).

        400 bad path, 403 no media root, 409 a bundle without extractor settings, 422 undecodable media.
        """
        return search.search_by_media(body.path, by=body.by.value, n=body.n)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["info"],
             responses={200: {"content": {"text/plain": {}},
                              "description": "Prometheus text exposition format, version 0.0.4"}})
    def metrics(request: Request) -> Response:
        """Prometheus metrics: requests by route template and status, latency histograms per route, the
        served bundle (path, checksum, model), item and user counts, registrations, reloads, search cache."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload", response_model=ReloadOut, tags=["admin"], dependencies=[WriteAccess],
              responses={**_ERRORS, 401: {"model": ErrorOut}, 403: {"model": ErrorOut}})
    def reload_bundle(request: Request, body: Annotated[ReloadIn | None, Body()] = None) -> dict[str, Any]:
        """Load a bundle (default: the served path again), verify it, and swap it in atomically: requests
        in flight finish on the old bundle, later ones get the new one, none fails. The registrations
        log of the loaded bundle is replayed, as at start-up. Needs `Authorization: Bearer <token>`;
        `kill -HUP` on the server process does the same for the served path.

        409 the bundle did not load, verify or answer (the old one keeps serving; the reason says
        why), another reload is running, or the server has several workers (send SIGHUP instead).
        """
        return request.app.state.reloader.reload(None if body is None else body.path)

    return app


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats (not representable in JSON) replaced by their repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def serve(bundle_path: str | Path, host: str = "127.0.0.1", port: int = 8000, media_root: str | Path | None = None,
          workers: int = 1, log_level: str = "warning", token: str | None = None, quiet: bool = False,
          exact: bool = False) -> None:
    """Serve a bundle with uvicorn until interrupted (``avrec serve``).

    The bundle is loaded and verified before the server starts, so a wrong path or a tampered
    bundle fails at once with a :class:`~recsys.errors.BundleError` (one line from the CLI), not
    from inside uvicorn's start-up.

    What it prints (:mod:`serving.console`): one start-up line on stderr once the bundle is loaded
    and the socket listens (URL, docs URL, bundle, model, users, items, search and registration,
    workers), the access log (a line per request, stdout), and uvicorn's and avrec's messages at
    ``log_level``; ``quiet``: errors only.

    ``SIGINT``/``SIGTERM`` stop it cleanly (:mod:`serving.supervisor`): idle keep-alive connections are
    closed at once, requests in flight get :data:`~serving.supervisor.SHUTDOWN_GRACE_S` seconds, and
    this returns normally (0.1-0.2 s after the signal when idle) for either signal.

    ``SIGHUP`` reloads the served path: with one worker, this process loads and verifies it off
    the request path and swaps it in (as ``POST /admin/reload``; a failure is logged and the old
    bundle keeps serving); with several, uvicorn replaces the workers one at a time, each new one
    loading the bundle before the old one stops (one whose bundle fails to load is dropped and the
    old worker kept).

    Parameters
    ----------
    bundle_path : path
    host, port : where to listen (port 0: a free port, named in the start-up line)
    media_root : path, optional
        Enables ``POST /items`` for files under it (with a token).
    workers : int
        Processes, each with its own copy of the model: a single Python process uses about one
        core however many requests are in flight (the GIL), so CPU-bound routes (search) scale
        with workers. Registered items are added to one process's model, so more than one worker
        cannot be combined with ``media_root``. Their ``/metrics`` counters are summed over all
        workers (prometheus_client's multiprocess mode, in ``$PROMETHEUS_MULTIPROC_DIR`` or a
        temporary folder removed at exit).
    log_level : str
        Level of uvicorn's and avrec's messages (the access log is at ``info`` whatever this says).
    token : str, optional
        Bearer token of the write routes (default ``$AVREC_TOKEN``); none: write routes are off.
    quiet : bool
        Errors only: no start-up line, no access log.
    exact : bool
        Exact retrieval even for a bundle with approximate indexes (``--exact``).
    """
    import uvicorn

    from serving.bundle import load_bundle
    from serving.console import LOG_LEVELS, describe_service, log_config
    from serving.supervisor import SHUTDOWN_GRACE_S, AnnouncingServer

    if media_root is not None and not Path(media_root).is_dir():
        raise ConfigError(f"--media-root {media_root} is not a directory")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if workers > 1 and media_root is not None:
        raise ConfigError("items registered with POST /items live in one process's memory: "
                          "use workers=1 with --media-root")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port}")
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level must be {', '.join(LOG_LEVELS[:-1])} or trace, got {log_level!r}")
    # log_level=None: the levels are in log_config, which the workers of a multi-worker server apply too
    options = {"log_config": log_config(level, quiet), "log_level": None, "access_log": not quiet,
               "timeout_graceful_shutdown": SHUTDOWN_GRACE_S}
    if workers == 1:
        service = build_service(load_bundle(bundle_path, exact=exact or None), media_root=media_root, token=token)
        summary = describe_service(service, token)
        app = create_app(service, token=token, exact=exact)
        sock = _listen(host, port)
        on_started = None if quiet else _announcer(summary, host, sock, workers)
        server = AnnouncingServer(uvicorn.Config(app, **options), on_started=on_started)
        _run(server, sock, on_hangup=_reload_in_background(app))
        return
    # fail here, in one line, not once per worker: the bundle and its registrations log
    summary = describe_service(build_service(load_bundle(bundle_path, exact=exact or None), token=token), token)
    os.environ[EXACT_ENV] = "1" if exact else ""
    _run_workers(bundle_path, host, port, workers, token, options, summary=None if quiet else summary)


def _announcer(summary: dict[str, Any], host: str, sock, workers: int):
    """A callback that prints the start-up line of a server listening on ``sock``."""
    from serving.console import announce, startup_line

    return lambda: announce(startup_line(summary, host, sock.getsockname()[1], workers))


def _run_workers(bundle_path: str | Path, host: str, port: int, workers: int, token: str | None,
                 options: dict[str, Any], summary: dict[str, Any] | None = None) -> None:
    """uvicorn's multi-process supervisor on a socket bound here; each worker builds its app from
    the environment (:func:`app_from_env`). The start-up line (from ``summary``; none without)
    is printed once, by this process, when every worker has started."""
    import shutil
    import tempfile

    import uvicorn

    from serving.supervisor import Supervisor

    # the workers are spawned processes: what they need travels in the environment
    os.environ[BUNDLE_ENV] = str(Path(bundle_path).resolve())
    os.environ[WORKERS_ENV] = str(workers)
    if token is not None:
        os.environ[TOKEN_ENV] = token
    own_dir = None
    if multiprocess_dir() is None:  # set before the workers import prometheus_client
        own_dir = tempfile.mkdtemp(prefix="avrec-metrics-")
        os.environ[MULTIPROC_ENV] = own_dir
    config = uvicorn.Config("serving.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                            timeout_worker_healthcheck=WORKER_START_TIMEOUT, **options)
    sock = _listen(host, port)
    on_ready = None if summary is None else _announcer(summary, host, sock, workers)
    try:
        with sock:
            # SIGHUP: uvicorn's rolling restart of the workers
            Supervisor(config, sockets=[sock], on_ready=on_ready, ready_timeout=WORKER_START_TIMEOUT).run()
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _listen(host: str, port: int):
    """A listening TCP socket with TCP_NODELAY, or a ConfigError naming why it cannot be bound."""
    import socket

    try:  # bind first, so "address in use" is a message, not uvicorn's SystemExit
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # Accepted connections inherit TCP_NODELAY from the listening socket on Linux. Without it a
    # response written as two segments (headers, then body) waits for the client's delayed ACK:
    # every request after a connection's first took 44 ms instead of 3. asyncio sets it itself
    # only on connections of a socket created with proto=IPPROTO_TCP, which socket.create_server's
    # is not (uvloop sets it on every TCP connection). The workers of a multi-worker server accept
    # on this same socket, so they get it too.
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _reload_in_background(app: FastAPI):
    """A SIGHUP handler for ``app``: reload its served path in a thread, log the outcome.

    Signal handlers run between bytecodes of the main thread, which runs the event loop: the
    reload (seconds of loading) must not run there.
    """
    import logging
    import threading

    log = logging.getLogger("avrec.serving")

    def reload() -> None:
        try:
            app.state.reloader.reload()
        except ReloadError as exc:
            log.error("SIGHUP: %s", exc)

    def on_hangup() -> None:
        threading.Thread(target=reload, name="avrec-reload", daemon=True).start()

    return on_hangup


def _run(server, sock, on_hangup=None) -> None:
    """Run a uvicorn server on the listening socket ``sock``; a failed start-up (the lifespan
    raised) becomes one ConfigError instead of uvicorn's traceback and exit. ``on_hangup()`` is
    called on SIGHUP. SIGINT and SIGTERM end it with a normal return once uvicorn has shut down."""
    import signal

    previous = {}
    if on_hangup is not None and hasattr(signal, "SIGHUP"):  # uvicorn itself handles INT and TERM only
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda signum, frame: on_hangup())
    # uvicorn shuts down on SIGTERM, then raises it again with the handler it found: the default
    # one would kill the process (status -15, no clean-up). Python's SIGINT handler makes that a
    # KeyboardInterrupt instead, which ends the server like Ctrl-C: status 0.
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with sock:
            try:
                server.run(sockets=[sock])
            except KeyboardInterrupt:  # uvicorn re-raises the signal it shut down on: a normal stop
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not server.started and not server.should_exit:
        raise ConfigError("the server did not start (see the log above)")


def app_from_env() -> FastAPI:
    """App factory of each worker of a multi-worker server: the bundle path is ``$AVREC_SERVE_BUNDLE``."""
    path = os.environ.get(BUNDLE_ENV)
    if not path:
        raise ConfigError(f"{BUNDLE_ENV} is not set; start the server with avrec serve --bundle B")
    return create_app(path, token=os.environ.get(TOKEN_ENV) or None, workers=int(os.environ.get(WORKERS_ENV, "1")),
                      exact=os.environ.get(EXACT_ENV) == "1")
