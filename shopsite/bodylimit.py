"""Refuse oversized request bodies while they arrive, before anything buffers them.

Two places buffer a body before Django's DATA_UPLOAD_MAX_MEMORY_SIZE is
checked: daphne (Twisted) collects the whole body, in a temporary file
above 100 kB, before the application hears of the request; and Django's
ASGIHandler reads it into a temporary file before any middleware runs.

* `LimitedWebRequest` is daphne's request with the limit (used by
  shopsite/web.py through `install_in_daphne()`): a declared Content-Length
  over the limit is answered 413 at once, a chunked body is counted as it
  arrives and answered 413 when it passes the limit; the body is kept in
  memory (at most the limit), never in a file, and never parsed again
  into Twisted's request.args. After a 413 the rest of the
  body is read and dropped for a moment before closing, so the client sees
  the answer rather than a reset connection.
* `BodyLimit` wraps the ASGI application, for any other ASGI server: the
  same rules on the `http.request` messages; past the limit the application
  sees a disconnect and the client gets 413.
"""

from __future__ import annotations

import json
from io import BytesIO
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


def _refusal_bytes(max_bytes: int) -> bytes:
    body = json.dumps({"error": f"request body larger than {max_bytes} bytes"}).encode()
    return (b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


LINGER_SECONDS = 2.0


def limited_request_class(max_bytes: int) -> type:
    from daphne.http_protocol import WebRequest
    from twisted.internet import reactor
    from twisted.web import http

    class LimitedWebRequest(WebRequest):
        refused = False
        received = 0

        def __init__(self, *args: Any, **kwargs: Any):
            # Twisted would also parse a form or multipart body into request.args, a copy daphne never
            # reads (it hands the raw body to the application), at the cost of an e-mail header parser per POST.
            super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

        def gotLength(self, length: int | None) -> None:
            self.content = BytesIO()  # never a temporary file: at most max_bytes are kept
            if length is not None and length > max_bytes:
                self._refuse()

        def handleContentChunk(self, data: bytes) -> None:
            if self.refused:
                return  # read and dropped
            self.received += len(data)
            if self.received > max_bytes:
                self._refuse()
                return
            self.content.write(data)

        def _refuse(self) -> None:
            self.refused = True
            self.content = BytesIO()
            transport = self.channel.transport
            transport.write(_refusal_bytes(max_bytes))
            reactor.callLater(LINGER_SECONDS, transport.loseConnection)

        def process(self) -> Any:
            if self.refused:
                return None
            return super().process()

        def connectionLost(self, reason: Any) -> None:
            if self.refused:  # never handed to the application: nothing of daphne's to clean up
                http.Request.connectionLost(self, reason)
                return
            super().connectionLost(reason)

    return LimitedWebRequest


def install_in_daphne() -> None:
    """Make daphne's HTTP factory build `LimitedWebRequest`s (call before the server starts).

    The limit is settings.REQUEST_BODY_MAX_BYTES, read when the first connection
    arrives (daphne has loaded the application, and so Django's settings, by then)."""
    import daphne.server
    from daphne.http_protocol import HTTPFactory

    request_class: list[type] = []

    class LimitedHTTPFactory(HTTPFactory):
        def buildProtocol(self, addr: Any) -> Any:
            protocol = super().buildProtocol(addr)
            if not request_class:
                from django.conf import settings

                request_class.append(limited_request_class(settings.REQUEST_BODY_MAX_BYTES))
            protocol.requestFactory = request_class[0]
            return protocol

    daphne.server.HTTPFactory = LimitedHTTPFactory
