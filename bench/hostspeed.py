"""How fast the host is right now: a fixed single-thread workload, timed, for the serving benches.

The benches compare within one run (``/health`` and the measured route alternate), so a slow host
moves both sides of a ratio; an absolute number such as a p99 latency it moves alone. On the
shared 2-core machines this project runs on, the same code measured ``/health`` at 0.36 ms of
server CPU one hour and 0.66-0.76 ms the next with nothing else running. Printing this probe
before and after a bench says which state a latency comes from, so runs can be compared.

Two parts, each the best of a few repeats (the least disturbed):

- ``numpy``: 100 times a (4 x 128) @ (128 x 6,710) float32 product and an ``argpartition`` of the
  result, the shape of one hybrid component's scan for four users (memory and BLAS speed);
- ``python``: 20,000 small dict builds, JSON encodings and decodings (interpreter speed, the part
  an HTTP request's framework overhead depends on).

Usage: ``python bench/hostspeed.py`` or ``from hostspeed import probe``.
"""

from __future__ import annotations

import json
import time

import numpy as np


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def probe(repeats: int = 5) -> dict[str, float]:
    """``{"numpy_ms": ..., "python_ms": ...}``: milliseconds of the two fixed workloads (lower is faster)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    u = rng.standard_normal((4, 128)).astype(np.float32)
    vt = np.ascontiguousarray(rng.standard_normal((6710, 128)).astype(np.float32).T)

    def scan() -> None:
        for _ in range(100):
            np.argpartition(-(u @ vt), 199, axis=1)

    def interp() -> None:
        for i in range(20_000):
            json.loads(json.dumps({"user_id": i, "items": [i, i + 1, i + 2], "score": 0.5}))

    with threadpool_limits(1):
        numpy_s = _best(scan, repeats)
    return {"numpy_ms": 1e3 * numpy_s, "python_ms": 1e3 * _best(interp, repeats)}


def describe(p: dict[str, float]) -> str:
    """One line for a bench's output."""
    return f"host probe: numpy {p['numpy_ms']:.1f} ms, python {p['python_ms']:.1f} ms (bench/hostspeed.py; lower is faster)"


if __name__ == "__main__":
    print(describe(probe()))
