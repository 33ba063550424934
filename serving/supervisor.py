"""uvicorn's server and multi-process supervisor with what ``avrec serve`` adds: a callback once
the server answers (the start-up line, :mod:`serving.console`) and a prompt, clean stop.

Stopping (``Ctrl-C``/SIGINT or SIGTERM): uvicorn stops accepting, closes idle keep-alive
connections at once, lets requests in flight finish for at most :data:`SHUTDOWN_GRACE_S`, and runs
the lifespan's shutdown; the server returns 0.1-0.2 s after the signal when idle (uvicorn notices
it at its next 0.1 s tick and waits 0.1 s after asking connections to close). With several
workers the parent wakes at the signal instead of at its next 0.5 s poll, sends SIGTERM to the
workers and waits for them. ``avrec serve`` then exits at once (recsys/cli.py): 0.15-0.28 s from
the signal to the exit, measured in tests/serving/test_cli_serving.py.

This module imports uvicorn: import it where a server is started, not where the app is built.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from socket import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

#: seconds requests in flight may take to finish once a stop is asked (uvicorn waits for ever by
#: default: a hung client would hold the server up). Every route but the media ones (POST /items,
#: POST /search/by-media: ~0.1-1 s of decoding) answers in milliseconds.
SHUTDOWN_GRACE_S = 3


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that calls ``on_started()`` once its start-up (the app's lifespan: the bundle
    loaded) has completed and it accepts connections; not when the start-up failed or a stop was
    asked meanwhile."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit and self.on_started is not None:
            self.on_started()


class Supervisor(Multiprocess):
    """uvicorn's multi-process supervisor that calls ``on_ready()`` once every worker has finished
    its start-up, and stops at SIGINT/SIGTERM without waiting for its next poll.

    Parameters
    ----------
    config : uvicorn.Config
        With ``workers`` > 1.
    sockets : list of socket
        Bound and listening; every worker accepts on them.
    on_ready : callable, optional
    ready_timeout : float
        Seconds to wait for the workers before giving up on ``on_ready`` (the server keeps running;
        a worker that fails its start-up stops it, as in uvicorn).
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket], on_ready: Callable[[], None] | None = None,
                 ready_timeout: float = 120.0) -> None:
        super().__init__(config, sockets)
        self.on_ready = on_ready
        self.ready_timeout = ready_timeout
        # uvicorn queues every signal and reads the queue every 0.5 s; a stop sets the event its
        # loop waits on, so the workers are told at once
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._stop)

    def _stop(self, sig: int, frame) -> None:
        self.should_exit.set()

    def init_processes(self) -> None:
        super().init_processes()
        if self.on_ready is not None and self._wait_ready():
            self.on_ready()

    def _wait_ready(self) -> bool:
        """True once every worker reports a completed start-up; False at a stop, a dead worker or the
        timeout. Runs in the main thread before uvicorn's supervision loop, which alone talks to
        the workers' health pipes afterwards (a pipe is not safe for two threads)."""
        deadline = time.monotonic() + self.ready_timeout
        pending = list(self.processes)
        while pending:
            if self.should_exit.is_set() or time.monotonic() > deadline:
                return False
            if any(p.process.exitcode is not None for p in pending):
                return False  # uvicorn's loop restarts it, or stops on a start-up failure
            pending = [p for p in pending if not p.is_ready(timeout=1)]
            if pending:
                self.should_exit.wait(0.05)
        return True
