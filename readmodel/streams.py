"""Server-sent event streams of the read model, served by Channels.

Each event goes out as its own ASGI body chunk, so nothing waits in a buffer
(daphne has been reported to buffer StreamingHttpResponse). A stream first
sends what exists, then whatever the read model announces
(readmodel/live.py). Entries carry their arrival number `seq` as the SSE id,
so a reconnecting browser (Last-Event-ID) gets exactly what it missed.

Built on AsyncConsumer rather than AsyncHttpConsumer: the latter ends the
consumer as soon as its handle() returns, after which group messages (the
live updates) are never delivered.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from django.conf import settings
from django.template.loader import render_to_string

from readmodel.live import LIST_GROUP, order_group
from readmodel.models import OrderProjection, public_entry

ALIAS = "read_model_service"


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


@database_sync_to_async
def _timeline(order_id: str) -> list[dict[str, Any]] | None:
    return OrderProjection.objects.using(ALIAS).filter(pk=order_id).values_list("timeline", flat=True).first()


class _StreamConsumer(AsyncConsumer):
    groups_to_join: list[str] = []

    async def handle(self) -> None:
        raise NotImplementedError

    async def http_request(self, message: dict[str, Any]) -> None:
        if not message.get("more_body"):  # a GET: the (empty) request body is complete
            await self.handle()

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        await self.close_stream()
        raise StopConsumer()

    async def send_body(self, body: bytes, *, more_body: bool = True) -> None:
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

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.SSE_HEARTBEAT_SECONDS)
            await self.send_body(b": heartbeat\n\n")

    async def close_stream(self) -> None:
        if getattr(self, "_heartbeat", None):
            self._heartbeat.cancel()
        for group in self.groups_to_join:
            await self.channel_layer.group_discard(group, self.channel_name)


class TimelineStream(_StreamConsumer):
    """GET /api/read/orders/{id}/stream: JSON timeline entries (event "entry"), in arrival order."""

    # The API answers 404 for an order it has not projected within a few seconds;
    # the dashboard, which links to an order right after creating it, waits as long as it takes.
    wait_for_projection = False

    async def handle(self) -> None:
        self.order_id = self.scope["url_route"]["kwargs"]["order_id"]
        self.sent = _last_event_id(self.scope)
        if not self.wait_for_projection and not await self._appears():
            payload = json.dumps({"error": f"order {self.order_id} not in the read model (yet)"}).encode()
            await self.send_response(404, payload, headers=[(b"Content-Type", b"application/json")])
            return
        # Join the group before reading, so nothing committed in between is missed.
        await self.open_stream([order_group(self.order_id)])
        await self._send_new()

    async def _appears(self, patience: float = 5.0) -> bool:
        """Give a just-created order a moment to reach the read model before answering 404."""
        deadline = asyncio.get_running_loop().time() + patience
        while await _timeline(self.order_id) is None:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def projection_changed(self, message: dict[str, Any]) -> None:
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

    wait_for_projection = True

    def render(self, entry: dict[str, Any]) -> bytes:
        row = render_to_string("dashboard/_timeline_entry.html", {"e": public_entry(entry)})
        return sse(row, event="entry", event_id=entry["seq"])


class OrderListStream(_StreamConsumer):
    """Tells the order list that orders changed; the page re-fetches what it shows."""

    async def handle(self) -> None:
        await self.open_stream([LIST_GROUP])

    async def orders_changed(self, message: dict[str, Any]) -> None:
        await self.send_body(sse(json.dumps(message["orderIds"]), event="changed"))
