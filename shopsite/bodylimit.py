"""Refuse oversized request bodies while they arrive, before anything buffers them.

Django's ASGIHandler reads the whole body into a temporary file before any
middleware runs, so DATA_UPLOAD_MAX_MEMORY_SIZE is checked only after the
bytes are on disk. This wraps the ASGI application instead: a declared
Content-Length over the limit is answered 413 at once, and a body without
one (chunked) is counted as its `http.request` messages arrive; past the
limit the application sees a disconnect (and stops reading) and the client
gets 413.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await _refuse(send, 400, "invalid Content-Length header")
                return
            if too_big:
                await _refuse(send, 413, f"request body larger than {self.max_bytes} bytes")
                return

        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, tracked_send)
        if exceeded and not started:
            await _refuse(send, 413, f"request body larger than {self.max_bytes} bytes")


async def _refuse(send: Any, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
