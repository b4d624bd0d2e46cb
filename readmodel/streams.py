"""Server-sent event streams of the read model, served by Channels.

An AsyncHttpConsumer writes each event as its own body chunk, so nothing
waits in a buffer (daphne has been reported to buffer StreamingHttpResponse).
A stream first sends what exists, then whatever the read model announces
(readmodel/live.py). Entries carry their arrival number `seq` as the SSE id,
so a reconnecting browser (Last-Event-ID) gets exactly what it missed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.http import AsyncHttpConsumer
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
    from urllib.parse import parse_qsl

    return dict(parse_qsl(scope.get("query_string", b"").decode()))


@database_sync_to_async
def _timeline(order_id: str) -> list[dict[str, Any]] | None:
    return OrderProjection.objects.using(ALIAS).filter(pk=order_id).values_list("timeline", flat=True).first()


class _StreamConsumer(AsyncHttpConsumer):
    groups_to_join: list[str] = []

    async def open_stream(self, groups: list[str]) -> None:
        await self.send_headers(headers=[
            (b"Content-Type", b"text/event-stream; charset=utf-8"),
            (b"Cache-Control", b"no-cache"),
            (b"X-Accel-Buffering", b"no"),  # and no proxy buffering either
        ])
        self.groups_to_join = groups
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        # The first chunk goes out at once, so clients know the stream is live.
        await self.send_body(b"retry: 2000\n\n", more_body=True)
        self._heartbeat = asyncio.ensure_future(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.SSE_HEARTBEAT_SECONDS)
            await self.send_body(b": heartbeat\n\n", more_body=True)

    async def disconnect(self) -> None:
        if getattr(self, "_heartbeat", None):
            self._heartbeat.cancel()
        for group in self.groups_to_join:
            await self.channel_layer.group_discard(group, self.channel_name)


class TimelineStream(_StreamConsumer):
    """GET /api/read/orders/{id}/stream: JSON timeline entries (event "entry"), in arrival order."""

    html = False

    async def handle(self, body: bytes) -> None:
        self.order_id = self.scope["url_route"]["kwargs"]["order_id"]
        self.sent = _last_event_id(self.scope)
        if await _timeline(self.order_id) is None:
            payload = json.dumps({"error": f"order {self.order_id} not in the read model (yet)"}).encode()
            await self.send_response(404, payload, headers=[(b"Content-Type", b"application/json")])
            return
        # Join the group before reading, so nothing committed in between is missed.
        await self.open_stream([order_group(self.order_id)])
        await self._send_new()

    async def projection_changed(self, message: dict[str, Any]) -> None:
        await self._send_new()

    async def _send_new(self) -> None:
        timeline = await _timeline(self.order_id) or []
        fresh = sorted((e for e in timeline if e.get("seq", 0) > self.sent), key=lambda e: e["seq"])
        for entry in fresh:
            await self.send_body(self.render(entry), more_body=True)
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

    async def handle(self, body: bytes) -> None:
        await self.open_stream([LIST_GROUP])

    async def orders_changed(self, message: dict[str, Any]) -> None:
        await self.send_body(sse(json.dumps(message["orderIds"]), event="changed"), more_body=True)
