"""In-process request metrics: counts per route and status, latency quantiles per route.

:class:`MetricsMiddleware` is a plain ASGI middleware (no ``BaseHTTPMiddleware``: that one wraps
every response body in a stream and costs ~100 us a request). It labels a request by its route
*template* (``/users/{user_id}/recommendations``), never the raw path, so the number of series
stays bounded however many ids clients send; requests that match no route share one label.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import numpy as np

UNMATCHED = "unmatched"
QUANTILES = (50, 90, 99)


class _RouteSeries:
    """Counts by status, and the last ``window`` latencies in a ring buffer."""

    __slots__ = ("by_status", "latencies", "pos", "total")

    def __init__(self, window: int) -> None:
        self.by_status: Counter[int] = Counter()
        self.latencies = np.zeros(window, dtype=np.float64)
        self.pos = 0  # next slot to write
        self.total = 0

    def add(self, status: int, seconds: float) -> None:
        self.by_status[status] += 1
        self.latencies[self.pos] = seconds
        self.pos = (self.pos + 1) % len(self.latencies)
        self.total += 1


class MetricsRecorder:
    """Thread-safe recorder of request outcomes.

    Parameters
    ----------
    window : int
        Latencies kept per route (a ring buffer); quantiles describe the most recent ``window``
        requests of the route, counts cover the whole uptime.
    """

    def __init__(self, window: int = 4096) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.started = time.time()
        self._series: dict[str, _RouteSeries] = {}
        # the middleware records on the event loop while /metrics may read from a worker thread
        self._lock = threading.Lock()

    def record(self, route: str, status: int, seconds: float) -> None:
        """Count one request of ``route`` (``"GET /path/{param}"``) that ended with ``status``."""
        with self._lock:
            s = self._series.get(route)
            if s is None:
                s = self._series[route] = _RouteSeries(self.window)
            s.add(status, seconds)

    def snapshot(self) -> dict[str, Any]:
        """Counts and latency quantiles (milliseconds) per route, as plain JSON values.

        Returns
        -------
        dict
            ``{"uptime_s", "window", "requests", "routes": {route: {"count", "status": {code: count},
            "latency_ms": {"p50", "p90", "p99", "max", "samples"}}}}``
        """
        with self._lock:
            copies = {r: (dict(s.by_status), s.latencies[: min(s.total, self.window)].copy(), s.total)
                      for r, s in self._series.items()}
        routes = {}
        for route, (by_status, lat, total) in sorted(copies.items()):
            q = np.percentile(lat, QUANTILES) * 1e3 if len(lat) else np.zeros(len(QUANTILES))
            latency = {f"p{p}": round(float(v), 3) for p, v in zip(QUANTILES, q)}
            latency["max"] = round(float(lat.max() * 1e3), 3) if len(lat) else 0.0
            latency["samples"] = len(lat)
            routes[route] = {"count": total, "status": {str(k): v for k, v in sorted(by_status.items())},
                             "latency_ms": latency}
        return {"uptime_s": round(time.time() - self.started, 3), "window": self.window,
                "requests": sum(r["count"] for r in routes.values()), "routes": routes}


class MetricsMiddleware:
    """ASGI middleware that times every HTTP request and records it in a :class:`MetricsRecorder`.

    The latency runs from the request's arrival at the app to the last body chunk handed to the
    server, so it includes routing, validation, the handler and serialisation but not the
    network. A request that raises before responding is recorded as 500.
    """

    def __init__(self, app, recorder: MetricsRecorder) -> None:
        self.app = app
        self.recorder = recorder

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
            route = scope.get("route")
            path = getattr(route, "path", None)
            label = f"{scope['method']} {path}" if path else UNMATCHED
            self.recorder.record(label, status, time.perf_counter() - t0)
