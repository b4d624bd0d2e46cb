"""Server-sent event streams of the read model, served by Channels.

Each event goes out as its own ASGI body chunk, so nothing waits in a buffer
(daphne has been reported to buffer StreamingHttpResponse). A stream first
sends what exists, then whatever the read model announces
(readmodel/live.py). Entries carry their arrival number `seq` as the SSE id,
so a reconnecting browser (Last-Event-ID) gets exactly what it missed.

Built on AsyncConsumer rather than AsyncHttpConsumer: the latter ends the
consumer as soon as its handle() returns, after which group messages (the
live updates) are never delivered.

Limits, since a stream holds a connection for long: who may open one is
checked like a page (shopsite/ops/stream_access.py); each web process allows
SSE_MAX_STREAMS_PER_USER per user and SSE_MAX_STREAMS in all (503 with
Retry-After beyond); a stream ends after SSE_MAX_AGE_SECONDS and the browser
reconnects with Last-Event-ID; an order nobody knows is a 404 at once. The
database reads run on their own small thread pool, not on the single thread
that Django's sync views share (database_sync_to_async's default), so
streams neither wait for each other there nor hold up the pages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

from asgiref.sync import sync_to_async
from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from django.conf import settings
from django.db import close_old_connections
from django.template.loader import render_to_string

from readmodel import live
from readmodel.models import OrderProjection, public_entry
from shopsite.ops import stream_access
from shopsite.ops.stream_admission import admission
from shopsite.services import BY_NAME

ALIAS = BY_NAME["readmodel"].alias
RETRY_AFTER_SECONDS = 5
LIST_IDS = 500  # changed orders named to the order list per message; the page re-fetches what it shows anyway

_reads = ThreadPoolExecutor(max_workers=settings.SSE_DB_THREADS, thread_name_prefix="stream-db")


def in_reader_thread(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run `function` on the streams' own threads, with Django's connection hygiene around it."""

    def run(*args: Any) -> Any:
        close_old_connections()
        try:
            return function(*args)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False, executor=_reads)




def sse(data: str, *, event: str | None = None, event_id: str | int | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


def _last_event_id(scope: dict[str, Any]) -> int:
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"last-event-id", b"").decode() or _query(scope).get("lastEventId", "")
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


def _query(scope: dict[str, Any]) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode()))


@in_reader_thread
def _timeline(order_id: str) -> list[dict[str, Any]] | None:
    return OrderProjection.objects.using(ALIAS).filter(pk=order_id).values_list("timeline", flat=True).first()


class _StreamConsumer(AsyncConsumer):
    groups_to_join: list[str] = []

    def __init__(self, order_known: Callable[[str], bool] | None = None) -> None:
        # Where an order not yet projected may still exist (the dashboard's stream): the order service's word.
        self.order_known = order_known
        self.admitted_as: tuple[str, str] | None = None  # (user, lease)
        self.ended = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()  # however the consumer ends: disconnect, cancellation, error

    async def handle(self) -> None:
        raise NotImplementedError

    async def http_request(self, message: dict[str, Any]) -> None:
        if message.get("more_body"):  # a GET: wait until the (empty) request body is complete
            return
        refusal = await self.admit()
        if refusal is not None:
            status, text, extra = refusal
            await self.send_response(status, json.dumps({"error": text}).encode(),
                                     headers=[(b"Content-Type", b"application/json"), *extra])
            return
        await self.handle()

    async def admit(self) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        headers = dict(self.scope.get("headers") or [])
        if not stream_access.host_allowed(headers):
            return 400, "invalid Host header", []
        status, user = await in_reader_thread(stream_access.viewer)(headers)
        if status == 401:
            return 401, "sign in or send Authorization: Bearer <token>", [(b"WWW-Authenticate", b'Bearer realm="shopsite"')]
        if status == 403:
            return 403, "permission ops.view_orders required", []
        user_key = str(user.pk)
        lease = await admission.admit(user_key)
        if lease is None:
            return 503, "too many open streams; try again later", [(b"Retry-After", str(RETRY_AFTER_SECONDS).encode())]
        self.admitted_as = (user_key, lease)
        return None

    async def _release(self) -> None:
        if self.admitted_as is not None:
            user_key, lease = self.admitted_as
            self.admitted_as = None
            await admission.release(user_key, lease)

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        await self.close_stream()
        raise StopConsumer()

    async def send_body(self, body: bytes, *, more_body: bool = True) -> None:
        if self.ended:
            return
        self.ended = not more_body
        await self.send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def send_response(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send_body(body, more_body=False)

    async def open_stream(self, groups: list[str]) -> None:
        await self.send({"type": "http.response.start", "status": 200, "headers": [
            (b"Content-Type", b"text/event-stream; charset=utf-8"),
            (b"Cache-Control", b"no-cache"),
            (b"X-Accel-Buffering", b"no"),  # and no proxy buffering either
        ]})
        self.groups_to_join = groups
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        # The first chunk goes out at once, so clients know the stream is live.
        await self.send_body(b"retry: 2000\n\n")
        self._heartbeat = asyncio.ensure_future(self._beat())
        self._expiry = asyncio.ensure_future(self._expire())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.SSE_HEARTBEAT_SECONDS)
            await self.send_body(b": heartbeat\n\n")
            if self.admitted_as is not None:
                await admission.renew(*self.admitted_as)

    async def _expire(self) -> None:
        """End the response after the maximum age; EventSource reconnects with Last-Event-ID."""
        await asyncio.sleep(settings.SSE_MAX_AGE_SECONDS)
        await self.send_body(b": max age reached, reconnect\n\n", more_body=False)
        await self.close_stream()

    async def close_stream(self) -> None:
        for task in (getattr(self, "_heartbeat", None), getattr(self, "_expiry", None)):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        for group in self.groups_to_join:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_to_join = []
        await self._release()


class TimelineStream(_StreamConsumer):
    """GET /api/read/orders/{id}/stream: JSON timeline entries (event "entry"), in arrival order."""

    async def handle(self) -> None:
        self.order_id = self.scope["url_route"]["kwargs"]["order_id"]
        self.sent = _last_event_id(self.scope)
        # 404 at once for an order nobody knows. One that exists but is not projected yet (the
        # dashboard links to an order right after creating it) gets its entries as they arrive.
        if await _timeline(self.order_id) is None and not await self._known_elsewhere():
            await self._release()
            payload = json.dumps({"error": f"order {self.order_id} not found"}).encode()
            await self.send_response(404, payload, headers=[(b"Content-Type", b"application/json")])
            return
        # Join the group before reading, so nothing committed in between is missed.
        await self.open_stream([live.GROUP])
        await self._send_new()

    async def _known_elsewhere(self) -> bool:
        return self.order_known is not None and bool(await in_reader_thread(self.order_known)(self.order_id))

    async def projections_changed(self, message: dict[str, Any]) -> None:
        if self.order_id in message["orderIds"]:  # every stream hears every change: this order's only
            await self._send_new()

    async def _send_new(self) -> None:
        timeline = await _timeline(self.order_id) or []
        fresh = sorted((e for e in timeline if e.get("seq", 0) > self.sent), key=lambda e: e["seq"])
        for entry in fresh:
            await self.send_body(self.render(entry))
            self.sent = entry["seq"]

    def render(self, entry: dict[str, Any]) -> bytes:
        return sse(json.dumps(public_entry(entry)), event="entry", event_id=entry["seq"])


class TimelineHtmlStream(TimelineStream):
    """The dashboard's variant: each entry as a rendered table row, for htmx's sse extension."""

    def render(self, entry: dict[str, Any]) -> bytes:
        row = render_to_string("dashboard/_timeline_entry.html", {"e": public_entry(entry)})
        return sse(row, event="entry", event_id=entry["seq"])


class OrderListStream(_StreamConsumer):
    """Tells the order list that orders changed; the page re-fetches what it shows."""

    async def handle(self) -> None:
        await self.open_stream([live.GROUP])

    async def projections_changed(self, message: dict[str, Any]) -> None:
        await self.send_body(sse(json.dumps(message["orderIds"][:LIST_IDS]), event="changed"))
