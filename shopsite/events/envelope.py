"""The event envelope (seed: EventEnvelope<T>) and its wire format.

`new_event` is the only way events are made (validated on produce);
`decode` is the only way bytes become events (validated on consume). Both
raise InvalidEvent with a reason a human can read in the dead-letter queue.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shopsite import ids, json_input
from shopsite.events import schemas, topics

HeaderValue = str | int | float | bool


class InvalidEvent(ValueError):
    """A message that can never be handled as it is: goes to the dead-letter queue."""

    def __init__(self, reason: str, *, event_type: str | None = None, event_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event_type = event_type
        self.event_id = event_id


class _WireEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eventId: str
    type: str = Field(min_length=1)
    version: int = Field(ge=1)
    timestamp: datetime
    correlationId: str = Field(min_length=1, max_length=64)
    causationId: str | None = Field(default=None, max_length=64)
    key: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any]
    headers: dict[str, HeaderValue] | None = None

    @field_validator("eventId")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return str(uuid.UUID(value))

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a timezone (ISO 8601 with Z or an offset)")
        return value.astimezone(timezone.utc)


def format_timestamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Event:
    event_id: str
    type: str
    version: int
    timestamp: datetime
    correlation_id: str
    causation_id: str | None
    key: str
    payload: schemas.Payload
    headers: dict[str, HeaderValue] = field(default_factory=dict)

    @property
    def order_id(self) -> str:
        return self.key

    @property
    def topic(self) -> str:
        return topics.topic_for(self.type)

    def payload_json(self) -> dict[str, Any]:
        return self.payload.model_dump(mode="json", exclude_none=True)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "eventId": self.event_id,
            "type": self.type,
            "version": self.version,
            "timestamp": format_timestamp(self.timestamp),
            "correlationId": self.correlation_id,
            "causationId": self.causation_id,
            "key": self.key,
            "payload": self.payload_json(),
        }
        if self.headers:
            wire["headers"] = dict(self.headers)
        return wire

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_wire(), separators=(",", ":")).encode()


def version_of(event_type: str) -> int:
    suffix = event_type.rsplit(".", 1)[-1]
    return int(suffix[1:]) if suffix.startswith("v") and suffix[1:].isdigit() else 1


def new_event(
    event_type: str,
    payload: schemas.Payload | dict[str, Any],
    *,
    correlation_id: str,
    causation_id: str | None = None,
    key: str | None = None,
    headers: dict[str, HeaderValue] | None = None,
    at: datetime | None = None,
) -> Event:
    """Make a validated event; raises InvalidEvent (a bug in the producer)."""
    try:
        model = schemas.payload_model(event_type)
        typed = payload if isinstance(payload, model) else model.model_validate(
            payload.model_dump() if isinstance(payload, schemas.Payload) else payload
        )
    except (schemas.UnknownEventType, ValidationError) as exc:
        raise InvalidEvent(f"refusing to produce invalid {event_type}: {exc}", event_type=event_type) from exc
    order_id = getattr(typed, "orderId", None)
    event_key = key or order_id
    if not event_key:
        raise InvalidEvent(f"{event_type} needs a key (the orderId)", event_type=event_type)
    return Event(
        event_id=ids.time_ordered_uuid(),  # sorts by time: inbox and outbox indexes grow at one end
        type=event_type,
        version=version_of(event_type),
        timestamp=at or datetime.now(timezone.utc),
        correlation_id=correlation_id,
        causation_id=causation_id,
        key=event_key,
        payload=typed,
        headers=dict(headers or {}),
    )


def from_wire(data: Any) -> Event:
    """Validate a decoded JSON envelope; raises InvalidEvent."""
    if not isinstance(data, dict):
        raise InvalidEvent(f"envelope must be a JSON object, got {type(data).__name__}")
    event_id = data.get("eventId") if isinstance(data.get("eventId"), str) else None
    event_type = data.get("type") if isinstance(data.get("type"), str) else None
    try:
        wire = _WireEnvelope.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid envelope: {_summary(exc)}", event_type=event_type, event_id=event_id) from exc
    try:
        payload = schemas.validate_payload(wire.type, wire.payload)
    except schemas.UnknownEventType as exc:
        raise InvalidEvent(str(exc), event_type=wire.type, event_id=wire.eventId) from exc
    except ValidationError as exc:
        raise InvalidEvent(
            f"invalid {wire.type} payload: {_summary(exc)}", event_type=wire.type, event_id=wire.eventId
        ) from exc
    order_id = getattr(payload, "orderId", None)
    if order_id is not None and order_id != wire.key:
        raise InvalidEvent(
            f"key {wire.key!r} does not match payload orderId {order_id!r}", event_type=wire.type, event_id=wire.eventId
        )
    return Event(
        event_id=wire.eventId,
        type=wire.type,
        version=wire.version,
        timestamp=wire.timestamp,
        correlation_id=wire.correlationId,
        causation_id=wire.causationId,
        key=wire.key,
        payload=payload,
        headers=dict(wire.headers or {}),
    )


def decode(raw: bytes | None) -> Event:
    """Any bytes -> an Event, or InvalidEvent with the reason: never another exception."""
    if raw is None:
        raise InvalidEvent("empty message (no value)")
    try:
        data = json_input.loads(raw)
    except json_input.NotJSON as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    return from_wire(data)


def _summary(exc: ValidationError) -> str:
    return "; ".join(f"{d['field']}: {d['message']}" for d in schemas.error_details(exc))
