"""The dead-letter queue: stored from ops.DeadLetter.v1, listed, and replayed.

A replay re-publishes the original event (or an operator's corrected copy)
to its topic through the read model's own outbox, counting replays in the
envelope's headers so a message that keeps failing cannot loop forever.
Consumers that had already handled the event skip it by its eventId; the
one that failed handles it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from readmodel.models import DeadLetter
from shopsite.events.deadletter import MAX_RAW_CHARS, REPLAY_COUNT_HEADER, storable
from shopsite.events.envelope import Event, InvalidEvent, format_timestamp, from_wire
from shopsite.events.schemas import DeadLetter as DeadLetterPayload
from shopsite.events.unit_of_work import UnitOfWork, unit_of_work
from shopsite.services import BY_NAME

ALIAS = BY_NAME["readmodel"].alias
MAX_REPLAYS = 3


class ReplayRefused(Exception):
    pass


class InvalidCorrection(ValueError):
    """An edited event that is not a valid event, or is not the dead letter's event:
    an operator may correct the payload, never the type, key (order) or eventId."""


def store(event: Event, alias: str) -> DeadLetter:
    letter: DeadLetterPayload = event.payload  # type: ignore[assignment]
    extra: dict[str, Any] = letter.model_extra or {}
    topic, partition, offset = extra.get("sourceTopic") or "unknown", extra.get("partition"), extra.get("offset")
    key = f"{topic}:{partition}:{offset}" if offset is not None else f"event:{event.event_id}"
    error = {"consumer": extra.get("consumer"), "error": letter.error, "at": format_timestamp(event.timestamp),
             "deadLetterEventId": event.event_id}
    row = DeadLetter.objects.using(alias).select_for_update().filter(pk=key).first()
    if row is None:
        original = letter.payload
        headers = original.get("headers") if isinstance(original, dict) and isinstance(original.get("headers"), dict) else {}
        row = DeadLetter(
            id=key, original_type=letter.originalType, original_event_id=letter.originalEventId,
            order_id=letter.orderId or "", error=letter.error, errors=[error], payload=original,
            source_topic=topic, partition=partition, offset=offset, headers=extra.get("headers") or {},
            correlation_id=extra.get("correlationId") or event.correlation_id, created_at=event.timestamp,
            replay_count=int(headers.get(REPLAY_COUNT_HEADER, 0) or 0),
        )
        row.save(using=alias, force_insert=True)
    elif all(e.get("deadLetterEventId") != event.event_id for e in row.errors):
        row.errors = [*row.errors, error]
        row.save(using=alias, update_fields=["errors"])
    return row


def check_replayable(row: DeadLetter, corrected: dict[str, Any] | None = None) -> Event:
    """The event a replay of `row` would publish; raises ReplayRefused with the reason it would not."""
    if row.replay_count >= MAX_REPLAYS:
        raise ReplayRefused(f"replayed {row.replay_count} times already (limit {MAX_REPLAYS}); fix the cause")
    if corrected is not None:
        return _corrected(row, corrected)  # raises InvalidCorrection
    try:
        event = from_wire(row.payload)
    except InvalidEvent as exc:
        raise ReplayRefused(f"the original message is not a valid event: {exc.reason}") from exc
    if event.topic != row.source_topic and row.source_topic != "unknown":
        raise ReplayRefused(f"the original is a {event.type} but came from {row.source_topic}; send a corrected event")
    return event


def store_unreadable(message: Any, reason: str, uow: UnitOfWork) -> DeadLetter:
    """Keep a message from the dead-letter topic that is not a readable dead letter, once.

    It cannot be dead-lettered (onto the topic it came from: a loop), so it is
    stored as its own row, its value as text, for an operator to see on /dlq.
    Replay refuses it: it is not an event.
    """
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    key = f"{topic}:{partition}:{offset}"
    row = DeadLetter.objects.using(uow.alias).filter(pk=key).first()
    if row is not None:
        return row  # redelivered
    raw = message.value() or b""
    order_key = storable((message.key() or b"").decode("utf-8", errors="replace")[:64])
    reason = storable(reason)
    row = DeadLetter(
        id=key, original_type="unreadable dead letter", original_event_id="unknown", order_id=order_key,
        error=f"unreadable message on the dead-letter topic: {reason}"[:2000],
        errors=[{"consumer": "readmodel", "error": reason[:2000], "at": format_timestamp(datetime.now(timezone.utc)),
                 "deadLetterEventId": None}],
        payload=storable(raw[:MAX_RAW_CHARS].decode("utf-8", errors="replace")), source_topic=topic,
        partition=partition, offset=offset, headers={}, correlation_id="", created_at=datetime.now(timezone.utc),
    )
    row.save(using=uow.alias, force_insert=True)
    return row


def replay(letter_id: str, corrected: dict[str, Any] | None = None) -> Event:
    """Publish the original (or corrected) event again; raises ReplayRefused with the reason."""
    with unit_of_work(ALIAS) as uow:
        row = DeadLetter.objects.using(ALIAS).select_for_update().filter(pk=letter_id).first()
        if row is None:
            raise LookupError(letter_id)
        event = check_replayable(row, corrected)
        count = row.replay_count + 1
        event = dataclasses.replace(event, headers={**event.headers, REPLAY_COUNT_HEADER: count})
        uow.emit(event)
        row.status, row.replay_count, row.replayed_at = DeadLetter.REPLAYED, count, datetime.now(timezone.utc)
        row.save(using=ALIAS, update_fields=["status", "replay_count", "replayed_at"])
    return event


def _corrected(row: DeadLetter, corrected: dict[str, Any]) -> Event:
    original = row.payload if isinstance(row.payload, dict) else {}
    fixed = {"type": row.original_type, "eventId": row.original_event_id or original.get("eventId"),
             "key": original.get("key", row.order_id)}
    for field, expected in fixed.items():
        if corrected.get(field) != expected:
            raise InvalidCorrection(f"{field} must stay {expected!r} (only the payload may be corrected)")
    try:
        return from_wire(corrected)
    except InvalidEvent as exc:
        raise InvalidCorrection(f"the corrected event is not a valid event: {exc.reason}") from exc


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operator means; empty fields match everything."""

    consumer: str = ""  # a consumer that gave up on it (any of its errors)
    event_type: str = ""  # the original event's type
    since: datetime | None = None  # dead-lettered at or after
    until: datetime | None = None  # dead-lettered before
    error_contains: str = ""  # in any of its errors, case-insensitive
    status: str | None = DeadLetter.PENDING  # None: replayed ones too


def select(selection: Selection) -> list[DeadLetter]:
    """The matching dead letters, oldest first (the order they went wrong in)."""
    query = DeadLetter.objects.using(ALIAS).order_by("created_at", "id")
    if selection.status:
        query = query.filter(status=selection.status)
    if selection.event_type:
        query = query.filter(original_type=selection.event_type)
    if selection.since:
        query = query.filter(created_at__gte=selection.since)
    if selection.until:
        query = query.filter(created_at__lt=selection.until)
    # The per-consumer errors are a JSON list: matched here, the same on every backend.
    needle = selection.error_contains.lower()
    return [
        row for row in query
        if (not selection.consumer or any(e.get("consumer") == selection.consumer for e in row.errors))
        and (not needle or needle in row.error.lower() or any(needle in str(e.get("error", "")).lower()
                                                              for e in row.errors))
    ]
