"""The event envelope (seed: EventEnvelope<T>) and its wire format.

`new_event` is the only way events are made (validated on produce);
`decode` is the only way bytes become events (validated on consume). Both
raise InvalidEvent with a reason a human can read in the dead-letter queue.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

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
    envelope = _usual_envelope(data) or _validated_envelope(data)
    try:
        payload = schemas.validate_payload(envelope.type, envelope.payload)
    except schemas.UnknownEventType as exc:
        raise InvalidEvent(str(exc), event_type=envelope.type, event_id=envelope.eventId) from exc
    except ValidationError as exc:
        raise InvalidEvent(
            f"invalid {envelope.type} payload: {_summary(exc)}", event_type=envelope.type, event_id=envelope.eventId
        ) from exc
    order_id = getattr(payload, "orderId", None)
    if order_id is not None and order_id != envelope.key:
        raise InvalidEvent(f"key {envelope.key!r} does not match payload orderId {order_id!r}",
                           event_type=envelope.type, event_id=envelope.eventId)
    return Event(
        event_id=envelope.eventId,
        type=envelope.type,
        version=envelope.version,
        timestamp=envelope.timestamp,
        correlation_id=envelope.correlationId,
        causation_id=envelope.causationId,
        key=envelope.key,
        payload=payload,
        headers=dict(envelope.headers or {}),
    )


class _Envelope(NamedTuple):
    """The envelope's fields, checked (what _WireEnvelope yields)."""

    eventId: str
    type: str
    version: int
    timestamp: datetime
    correlationId: str
    causationId: str | None
    key: str
    payload: dict[str, Any]
    headers: dict[str, HeaderValue] | None


def _validated_envelope(data: dict[str, Any]) -> _Envelope:
    event_id = data.get("eventId") if isinstance(data.get("eventId"), str) else None
    event_type = data.get("type") if isinstance(data.get("type"), str) else None
    try:
        wire = _WireEnvelope.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid envelope: {_summary(exc)}", event_type=event_type, event_id=event_id) from exc
    return _Envelope(wire.eventId, wire.type, wire.version, wire.timestamp, wire.correlationId, wire.causationId,
                     wire.key, wire.payload, wire.headers)


_REQUIRED_FIELDS = frozenset({"eventId", "type", "version", "timestamp", "correlationId", "key", "payload"})
_FIELDS = frozenset(_WireEnvelope.model_fields)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# format_timestamp's; [0-9], not \d, which matches any script's digits.
_UTC_MICROSECONDS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def _usual_envelope(data: dict[str, Any]) -> _Envelope | None:
    """The envelope as this system writes it, checked without pydantic; None for anything else.

    Every envelope a consumer reads takes this path, and pydantic's
    validation measured at a fifth of decoding. It accepts only values
    _WireEnvelope accepts unchanged (exact types, a canonical lowercase
    eventId, the timestamp as format_timestamp writes it, no headers), so
    the result is the same; an envelope in any other shape, valid or not,
    goes to _WireEnvelope, which also words the reasons.
    """
    if not (_REQUIRED_FIELDS <= data.keys() <= _FIELDS) or data.get("headers") is not None:
        return None
    event_id, event_type, version, timestamp = data["eventId"], data["type"], data["version"], data["timestamp"]
    correlation_id, causation_id, key, payload = data["correlationId"], data.get("causationId"), data["key"], \
        data["payload"]
    if not (type(event_id) is str and _CANONICAL_UUID.fullmatch(event_id) and type(event_type) is str and event_type
            and type(version) is int and version >= 1 and type(timestamp) is str
            and _UTC_MICROSECONDS.fullmatch(timestamp) and type(correlation_id) is str and 0 < len(correlation_id) <= 64
            and (causation_id is None or type(causation_id) is str and len(causation_id) <= 64)
            and type(key) is str and 0 < len(key) <= 64 and type(payload) is dict):
        return None
    try:
        at = datetime.fromisoformat(timestamp)  # UTC, as _WireEnvelope's astimezone(timezone.utc) gives
    except ValueError:  # a day that does not exist: let the full validation say so
        return None
    return _Envelope(event_id, event_type, version, at, correlation_id, causation_id, key, payload, None)


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
