from __future__ import annotations

import json
from collections.abc import Iterable

from shopsite.events.consumer import BatchProcessor, RetryPolicy
from shopsite.events.envelope import Event, decode
from shopsite.events.models import OutboxMessage
from shopsite.events.registry import consumer_spec
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
