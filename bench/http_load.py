"""A light HTTP load client for the serving benchmarks: :func:`load`.

The benches run client and server on the same (2-core) machine, so the client's own CPU is taken
from the server and its own queueing is added to every latency. httpx's async client costs about
1.2-2 ms of CPU a request (its request/response objects, h11 parser, connection pool), as much
as a whole search on the server: with 4 requests in flight, responses wait in the client's event
loop behind each other's parsing, and the measured tail is the client's. This client writes
``GET`` requests by hand on ``concurrency`` keep-alive HTTP/1.1 connections and reads each
response by its ``Content-Length``, at ~0.1 ms of CPU a request. It reads whole bodies but does
not parse them (neither does the httpx load loop: it checks the status).

Scope: ``GET`` against a server that answers with ``Content-Length`` (uvicorn does, for every
avrec route). Anything else (a broken connection, a malformed answer) counts as an error and the
connection is opened again.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """Send one request and read its whole response; returns the status code and the body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    k = lower.find(b"\r\ncontent-length:")
    if k < 0:
        raise ValueError("response without Content-Length")
    end = lower.index(b"\r\n", k + 2)
    return status, await reader.readexactly(int(lower[k + 17:end]))


async def load(url: str, paths: list[str], concurrency: int, max_seconds: float,
               stop: threading.Event | None = None, keep: bool = False) -> dict:
    """GET every path (or as many as fit in ``max_seconds``) with ``concurrency`` requests in flight.

    Each of ``concurrency`` connections sends its next request as soon as the previous answer is
    read (a closed loop), taking the next path of the shared list.

    Parameters
    ----------
    stop : threading.Event, optional
        Set from another thread to end the load early.
    keep : bool
        Also return every answer: ``statuses`` (n,) int (0: no answer) and ``bodies`` (list of bytes).

    Returns
    -------
    dict: n, errors, seconds, latencies (n,) float64 seconds (client side), starts (n,) float64
    (``time.perf_counter()`` at each request's start)
        n, errors, seconds and latencies as ``bench_serving._load`` (httpx) returns them, so the
        two clients are interchangeable.
    """
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    lat = np.zeros(len(paths))
    starts = np.zeros(len(paths))
    statuses = np.zeros(len(paths), np.int64)
    bodies: list[bytes] = [b""] * (len(paths) if keep else 0)
    errors = 0
    nxt = 0
    stop_at = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal nxt, errors
        conn = None
        while nxt < len(paths) and time.perf_counter() < stop_at and not (stop is not None and stop.is_set()):
            i, nxt = nxt, nxt + 1
            request = f"GET {paths[i]} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
            t0 = starts[i] = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                statuses[i], body = await _exchange(*conn, request)
                if keep:
                    bodies[i] = body
            except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                if conn is not None:
                    conn[1].close()
                conn = None
            lat[i] = time.perf_counter() - t0
            errors += statuses[i] != 200
        if conn is not None:
            conn[1].close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    done = min(nxt, len(paths))
    out = {"n": done, "errors": int(errors), "seconds": seconds, "latencies": lat[:done], "starts": starts[:done]}
    if keep:
        out |= {"statuses": statuses[:done], "bodies": bodies[:done]}
    return out


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) of a process and its descendants, from /proc (None elsewhere)."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        total, todo = 0.0, [pid]
        while todo:
            p = todo.pop()
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        return total
    except (OSError, ValueError, IndexError):
        return None
