from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterable, Iterator

from shopsite.events.consumer import BatchProcessor, RetryPolicy
from shopsite.events.envelope import Event, decode
from shopsite.events.models import OutboxMessage
from shopsite.events.registry import consumer_spec
from shopsite.jsonlog import JsonFormatter
from shopsite.services import BY_NAME
from tests.factories import FakeMessage, message


def processor(service: str, attempts: int = 3) -> BatchProcessor:
    return BatchProcessor(consumer_spec(BY_NAME[service]), RetryPolicy(attempts=attempts, sleep=lambda _s: None))


def deliver(service: str, events: Iterable[Event | FakeMessage], **kwargs) -> None:
    batch = [e if isinstance(e, FakeMessage) else message(e) for e in events]
    processor(service, **kwargs).process(batch)


def outbox(service: str, event_type: str | None = None) -> list[Event]:
    alias = BY_NAME[service].alias
    rows = OutboxMessage.objects.using(alias).order_by("id")
    if event_type:
        rows = rows.filter(type=event_type)
    return [decode(json.dumps(r.payload).encode()) for r in rows]


@contextlib.contextmanager
def json_log_lines() -> Iterator[list[dict]]:
    """The JSON log lines written while the block runs, as the stdout handler writes them.

    Formatted when written, inside the request, where its bound fields (orderId...) live."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())
