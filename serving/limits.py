"""A cap on request body size, as a plain ASGI middleware.

uvicorn reads whatever body a client sends; without a cap one request could make the server
buffer gigabytes before FastAPI ever validates it. The largest legitimate body (an ad-hoc history
of :data:`serving.app.MAX_HISTORY` ids with weights) is well under a megabyte, so bodies over
:data:`MAX_BODY_BYTES` are answered ``413`` with a reason: at once when ``Content-Length`` says
so, or as soon as a chunked body passes the cap (after reading and dropping the rest of the upload,
up to :data:`DRAIN_BYTES`, so that closing the connection does not reset it under the answer).
"""

from __future__ import annotations

import json

MAX_BODY_BYTES = 2 * 1024 * 1024
#: before a 413 is sent, the rest of the upload is read and dropped up to this many bytes: the
#: server closes the connection after a 413, and closing on unread data makes the kernel reset it,
#: so the client could lose the 413 itself. Past this cap the 413 goes out at once and a reset is
#: accepted (a client pushing more than this is not waiting for an answer).
DRAIN_BYTES = 64 * 1024 * 1024


class BodyLimitMiddleware:
    """Answer 413 to requests whose body exceeds ``max_bytes``."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send) -> None:
        body = json.dumps({"detail": f"request body over {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _drain(receive, limit: int = DRAIN_BYTES) -> None:
        """Read and drop the rest of the request body (at most ``limit`` bytes)."""
        seen = 0
        while seen < limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            declared = int(length) if length is not None else None
        except ValueError:  # uvicorn's parser rejects these first; kept for other servers
            declared = None
        if declared is not None and declared > self.max_bytes:
            if declared <= DRAIN_BYTES:
                await self._drain(receive)
            await self._reject(send)
            return
        seen = 0
        started = rejected = False

        async def counted_receive():
            nonlocal seen, started, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not started:
                    # answer now; the app sees the client leave, and whatever it sends is dropped
                    started = rejected = True
                    if message.get("more_body", False):
                        await self._drain(receive, DRAIN_BYTES - seen)
                    await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message) -> None:
            nonlocal started
            if rejected:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, guarded_send)
