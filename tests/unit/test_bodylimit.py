"""The ASGI body limit (for servers other than daphne, which refuses earlier): pure ASGI messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shopsite.bodylimit import BodyLimit

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")


class RecordingApp:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] == "http.disconnect":
                return  # as Django does: the request is abandoned, nothing is sent
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def run(app: BodyLimit, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> list[dict[str, Any]]:
    incoming = [{"type": "http.request", "body": c, "more_body": n < len(chunks) - 1} for n, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "headers": headers}, receive, send))
    return sent


def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs():
    inner = RecordingApp()
    sent = run(BodyLimit(inner, 10), [(b"content-length", b"11")], [b"x" * 11])
    assert sent[0]["status"] == 413 and inner.received == []


def test_an_undeclared_body_is_counted_and_the_app_sees_a_disconnect_past_the_limit():
    inner = RecordingApp()
    sent = run(BodyLimit(inner, 10), [], [b"x" * 6, b"x" * 6, b"x" * 6])
    assert sent[0]["status"] == 413
    assert [m["type"] for m in inner.received] == ["http.request", "http.disconnect"]


def test_a_body_within_the_limit_passes_untouched():
    inner = RecordingApp()
    sent = run(BodyLimit(inner, 10), [(b"content-length", b"10")], [b"x" * 5, b"x" * 5])
    assert sent[0]["status"] == 200 and sum(len(m["body"]) for m in inner.received) == 10
