"""Building events and Kafka-like messages for tests that run without Kafka."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from shopsite.events import topics
from shopsite.events.envelope import Event, new_event

T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)


@dataclass
class FakeMessage:
    """Just enough of confluent_kafka.Message for BatchProcessor."""

    _value: bytes | None
    _topic: str
    _key: bytes | None = None
    _partition: int = 0
    _offset: int = 0
    _headers: list[tuple[str, bytes]] = field(default_factory=list)

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def error(self) -> None:
        return None


_offsets: dict[str, int] = {}


def message(event: Event) -> FakeMessage:
    offset = _offsets.get(event.topic, 0)
    _offsets[event.topic] = offset + 1
    return FakeMessage(event.to_bytes(), event.topic, event.key.encode(), 0, offset)


def raw_message(value: bytes | None, topic: str = topics.ORDER_CREATED, key: str = "o-raw") -> FakeMessage:
    offset = _offsets.get(topic, 0)
    _offsets[topic] = offset + 1
    return FakeMessage(value, topic, key.encode(), 0, offset)


class Saga:
    """One order's events, made the way the services make them (correlation and causation chained)."""

    def __init__(self, order_id: str | None = None, items: list[dict] | None = None, total: float = 20.0,
                 start: datetime = T0):
        self.order_id = order_id or str(uuid.uuid4())
        self.correlation_id = str(uuid.uuid4())
        self.items = items or [{"sku": "SKU-1", "qty": 2}]
        self.total = total
        self.clock = start
        self.last: Event | None = None

    def next(self, event_type: str, payload: dict[str, Any], cause: Event | None = None) -> Event:
        self.clock += timedelta(milliseconds=100)
        cause = cause or self.last
        event = new_event(event_type, {"orderId": self.order_id, **payload}, correlation_id=self.correlation_id,
                          causation_id=cause.event_id if cause else None, at=self.clock)
        self.last = event
        return event

    def created(self) -> Event:
        return self.next(topics.ORDER_CREATED, {"items": self.items, "total": self.total}, cause=None)

    def reserved(self) -> Event:
        return self.next(topics.INVENTORY_RESERVED, {"reservedItems": self.items})

    def authorized(self) -> Event:
        return self.next(topics.PAYMENT_AUTHORIZED, {"amount": self.total, "authId": "auth_1"})

    def shipped(self) -> Event:
        return self.next(topics.ORDER_SHIPPED, {"carrier": "DHL", "trackingId": "DHL123"})

    def happy_path(self) -> list[Event]:
        return [self.created(), self.reserved(), self.authorized(), self.shipped()]


def wire(event: Event, **changes: Any) -> bytes:
    data = event.to_wire()
    data.update(changes)
    return json.dumps(data).encode()
