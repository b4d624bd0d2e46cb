"""Turning a message that cannot be handled into an ops.DeadLetter.v1 event.

The dead letter goes through the consumer's own outbox, in the same
transaction as the offset-moving batch, so a poison message is never both
skipped and lost. It carries everything needed to understand and replay it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from shopsite import json_input
from shopsite.events import topics
from shopsite.events.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

MAX_RAW_CHARS = 64_000
MAX_ID_CHARS = 64  # correlationId, causationId and key in an envelope
REPLAY_COUNT_HEADER = "x-replay-count"
# PostgreSQL's text and jsonb cannot hold U+0000: a dead letter that carried one could never be
# written, and its consumer would stop on the same poison for ever. Shown as a replacement
# character, as undecodable bytes already are.
NUL, SHOWN_FOR_NUL = "\x00", "\ufffd"


def storable(value: Any) -> Any:
    """`value` with every NUL character of its strings (keys included) replaced."""
    if isinstance(value, str):
        return value.replace(NUL, SHOWN_FOR_NUL) if NUL in value else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def _original(raw: bytes | None) -> tuple[Any, dict[str, Any]]:
    """(payload to keep, parsed envelope or {}) from the raw message value, both storable."""
    original, envelope = _parsed(raw)
    return storable(original), storable(envelope)


def _parsed(raw: bytes | None) -> tuple[Any, dict[str, Any]]:
    if raw is None:
        return None, {}
    try:
        data = json_input.loads(raw)
    except json_input.NotJSON:  # kept as text: binary, hostile or too deep to carry as JSON
        return raw.decode("utf-8", errors="replace")[:MAX_RAW_CHARS], {}
    envelope = data if isinstance(data, dict) else {}
    if len(raw) > MAX_RAW_CHARS:
        # A dead letter carrying the whole of a huge original would be too large for the broker
        # itself (and parked): keep its head as text; the envelope's ids still name it.
        return raw[:MAX_RAW_CHARS].decode("utf-8", errors="replace"), envelope
    return data, envelope


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _clamped(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


def _envelope_id(value: Any) -> str | None:
    """The original's id when it is one an envelope may carry (a UUID); else None.

    The dead letter's own envelope must pass the same validation as any
    event: one built from an over-long correlationId or eventId would be
    dead-lettered again by its reader, onto the dead-letter topic, for ever.
    """
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _correlation_id(envelope: dict[str, Any]) -> str:
    """The original's correlationId if an envelope allows it (1-64 characters), else a fresh one."""
    value = _str_or_none(envelope.get("correlationId"))
    return value if value is not None and len(value) <= MAX_ID_CHARS else str(uuid.uuid4())


def emit_dead_letter(uow: UnitOfWork, consumer: str, message: Any, reason: str, *,
                     event_type: str | None = None, event_id: str | None = None) -> None:
    original, envelope = _original(message.value())
    payload = envelope.get("payload") if isinstance(envelope.get("payload"), dict) else {}
    raw_key = message.key()
    order_id = _clamped(_str_or_none(payload.get("orderId")) or _str_or_none(envelope.get("key"))
                        or (storable(raw_key.decode("utf-8", errors="replace")) if raw_key else None), MAX_ID_CHARS)
    headers = storable({k: (v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v)
                         for k, v in (message.headers() or [])})
    correlation_id = _correlation_id(envelope)
    original_event_id = event_id or _str_or_none(envelope.get("eventId"))
    uow.emit_new(
        topics.DEAD_LETTER,
        {
            "originalType": _clamped(event_type or _str_or_none(envelope.get("type")), 200) or "unknown",
            "originalEventId": _clamped(original_event_id, 100) or "unknown",
            "orderId": order_id,
            "error": storable(reason[:2000]),
            "payload": original,
            "sourceTopic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "headers": headers,
            "correlationId": correlation_id,
            "consumer": consumer,
        },
        correlation_id=correlation_id,
        causation_id=_envelope_id(envelope.get("eventId")),
        key=order_id or f"{message.topic()}-{message.partition()}"[:MAX_ID_CHARS],
    )
    log.warning("message dead-lettered", extra={
        "consumer": consumer, "topic": message.topic(), "partition": message.partition(),
        "offset": message.offset(), "reason": reason[:500], "orderId": order_id,
        "correlationId": correlation_id, "originalEventId": original_event_id,
    })
