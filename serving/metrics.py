"""Request and bundle metrics in the Prometheus exposition format (``GET /metrics``).

Series (``prometheus_client``; one registry per app, so several apps in one process stay apart)::

    avrec_http_requests_total{method, route, status}        counter
    avrec_http_request_duration_seconds{method, route}      histogram (buckets: :data:`LATENCY_BUCKETS`)
    avrec_bundle_info{path, checksum, model, created, avrec_version, retrieval}   1 for the bundle
                                                                  being served (retrieval: exact, ivf, none)
    avrec_bundle_loaded_timestamp_seconds, avrec_bundle_generation     when it was loaded; swaps so far
    avrec_bundle_reloads_total{outcome="ok"|"failed"}       counter
    avrec_items, avrec_users, avrec_registered_items        gauges of the served model
    avrec_search_cache_lookups_total{outcome="hit"|"miss"}, avrec_search_cache_entries
    avrec_recommend_batches_total, avrec_recommend_batched_users_total   known users' lists computed
                                                                  together (serving.batching)

``route`` is the route *template* (``/users/{user_id}/recommendations``), never the raw path, so
the number of series stays bounded however many ids clients send; requests that match no route
share ``route="unmatched"``, and methods other than the standard ones ``method="other"``.

:class:`MetricsMiddleware` is a plain ASGI middleware (no ``BaseHTTPMiddleware``: that one wraps
every response body in a stream and costs ~100 us a request).

**Several worker processes** (``avrec serve --workers N``): the request counters and histograms
use prometheus_client's multiprocess mode: :func:`serving.app.serve` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers start, every worker writes its
samples there, and ``/metrics`` in any worker sums them over all workers (dead ones included, so
counters never go back), the search cache lookups too. The bundle series and the cache's size are
the answering worker's own: every worker serves the same bundle (registration is off with several
workers), and each has its own cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

UNMATCHED = "unmatched"
#: request methods kept as label values; any other (clients may send any token) counts as "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: seconds; dense between 1 and 50 ms, where the serving targets (p99 <= 25 ms) are decided
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
                   0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    """The multiprocess folder of this process's metrics, when several workers share them."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class ServedStateCollector:
    """Collects the bundle, item and cache series from the live server state at scrape time.

    Parameters
    ----------
    reloader : serving.reload.Reloader
        Read on every scrape: the served snapshot, reload counts and the query cache.
    """

    def __init__(self, reloader) -> None:
        self.reloader = reloader

    def collect(self) -> Iterable[Metric]:
        r = self.reloader
        reloads = CounterMetricFamily("avrec_bundle_reloads", "Bundle reloads by outcome (POST /admin/reload, SIGHUP)",
                                      labels=["outcome"])
        reloads.add_metric(["ok"], r.reloads_ok)
        reloads.add_metric(["failed"], r.reloads_failed)
        yield reloads
        yield GaugeMetricFamily("avrec_search_cache_entries", "Entries in the query cache (this process)",
                                value=len(r.cache))
        served = r.current
        if served is None:  # before the lifespan loaded the bundle
            return
        d = served.describe()
        info = GaugeMetricFamily("avrec_bundle_info", "The bundle being served (value 1)",
                                 labels=["path", "checksum", "model", "created", "avrec_version", "retrieval"])
        info.add_metric([str(d["path"] or ""), d["checksum"] or "", d["model"], str(d["created"] or ""),
                         str(d["avrec_version"] or ""), d["retrieval"]], 1)
        yield info
        yield GaugeMetricFamily("avrec_bundle_loaded_timestamp_seconds", "Unix time the served bundle was loaded",
                                value=d["loaded_at"])
        yield GaugeMetricFamily("avrec_bundle_generation", "Bundles swapped in since the server started",
                                value=d["generation"])
        yield GaugeMetricFamily("avrec_items", "Items of the served model, registered ones included",
                                value=d["n_items"])
        yield GaugeMetricFamily("avrec_users", "Users of the served model", value=d["n_users"])
        batcher = served.service.batcher
        yield CounterMetricFamily("avrec_recommend_batches", "Model calls that computed known users' lists "
                                  "(serving.batching; restarts at a reload)", value=batcher.batches)
        yield CounterMetricFamily("avrec_recommend_batched_users", "Lists those calls computed: divided by "
                                  "avrec_recommend_batches_total, the mean batch size", value=batcher.requests)
        yield GaugeMetricFamily("avrec_registered_items",
                                "Items added with POST /items since the bundle was loaded (log replay included)",
                                value=d["registered_items"])


class ServingMetrics:
    """The metrics of one app: request counters and latency histograms, plus the served state.

    Parameters
    ----------
    reloader : serving.reload.Reloader, optional
        Source of the bundle, item and cache series; None exports request series only.
    """

    def __init__(self, reloader=None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("avrec_http_requests", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("avrec_http_request_duration_seconds",
                                 "Time from the request's arrival at the app to its last body byte handed to the "
                                 "server, by route template", ["method", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.cache_lookups = Counter("avrec_search_cache_lookups", "Query cache lookups of searches by outcome",
                                     ["outcome"], registry=self.registry)
        self._cache_children = {True: self.cache_lookups.labels("hit"), False: self.cache_lookups.labels("miss")}
        self._state = None if reloader is None else ServedStateCollector(reloader)
        if self._state is not None:
            self.registry.register(self._state)
        if multiprocess_dir() is None:  # a process collector reports one process: not the sum of workers
            from prometheus_client import ProcessCollector

            ProcessCollector(registry=self.registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request of ``route`` (a template, or :data:`UNMATCHED`) that ended with ``status``."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a tuple: done once per series
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def cache_lookup(self, hit: bool) -> None:
        """Count one query cache lookup (:attr:`serving.query_cache.QueryCache.on_lookup`)."""
        self._cache_children[hit].inc()

    def exposition(self) -> bytes:
        """The text exposition format (version 0.0.4) of every series."""
        folder = multiprocess_dir()
        if folder is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)
        if self._state is not None:
            registry.register(self._state)
        return generate_latest(registry)


class MetricsMiddleware:
    """ASGI middleware that times every HTTP request and records it in :class:`ServingMetrics`.

    The latency runs from the request's arrival at the app to the last body chunk handed to the
    server, so it includes routing, validation, the handler and serialisation but not the
    network. A request that raises before responding is recorded as 500.
    """

    def __init__(self, app, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # FastAPI's router puts the matched route object in the scope it passes down, and the
            # scope dict is shared, so it is readable here after the call
            path = getattr(scope.get("route"), "path", None)
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.observe(method, path or UNMATCHED, status, time.perf_counter() - t0)


# ---------------------------------------------------------------------------- reading it back
def parse_exposition(text: str) -> dict[str, Any]:
    """Samples of an exposition text, by metric family name (``prometheus_client.parser``).

    Returns
    -------
    dict
        ``{family name: [(sample name, labels dict, value), ...]}``
    """
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: [(s.name, dict(s.labels), s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def route_summary(text: str) -> dict[str, dict[str, Any]]:
    """Per route: request count by status and latency quantiles estimated from the histogram.

    The quantiles interpolate linearly inside the histogram bucket that holds them, as
    Prometheus's ``histogram_quantile`` does, so they are estimates with the buckets' resolution
    (:data:`LATENCY_BUCKETS`: 1-5 ms around 10-30 ms).

    Returns
    -------
    dict
        ``{"METHOD /route": {"count", "status": {code: count}, "p50_ms", "p90_ms", "p99_ms"}}``
    """
    families = parse_exposition(text)
    out: dict[str, dict[str, Any]] = {}
    for _, labels, value in families.get("avrec_http_requests", []):
        r = out.setdefault(f"{labels['method']} {labels['route']}", {"count": 0, "status": {}})
        r["count"] += int(value)
        r["status"][labels["status"]] = r["status"].get(labels["status"], 0) + int(value)
    buckets: dict[str, list[tuple[float, float]]] = {}
    for name, labels, value in families.get("avrec_http_request_duration_seconds", []):
        if name.endswith("_bucket"):
            buckets.setdefault(f"{labels['method']} {labels['route']}", []).append((float(labels["le"]), value))
    for route, bs in buckets.items():
        bs.sort()
        for q in (50, 90, 99):
            out.setdefault(route, {"count": 0, "status": {}})[f"p{q}_ms"] = _bucket_quantile(bs, q / 100) * 1e3
    return out


def _bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """``histogram_quantile(q)`` over cumulative ``(upper bound, count)`` pairs, sorted by bound."""
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):  # above the largest finite bound: that bound is all we know
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower

