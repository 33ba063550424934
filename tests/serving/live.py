"""A real uvicorn server on a loopback port for the HTTP tests."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx

from serving.app import create_app


@contextmanager
def live_server(bundle, media_root=None, token=None, **app_options):
    """A uvicorn server on a free loopback port in a daemon thread; yields an httpx client for it
    (which sends no token: tests add ``Authorization`` where they mean to). ``app_options`` go to
    :func:`serving.app.create_app`.

    The listening socket is bound here and handed to uvicorn, so there is no window in which
    another process could take the port.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(bundle, media_root=media_root, token=token, **app_options), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # set after the lifespan (bundle load) completed
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
