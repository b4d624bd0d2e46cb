"""The dead-letter queue: stored from ops.DeadLetter.v1, listed, and replayed.

A replay re-publishes the original event (or an operator's corrected copy)
to its topic through the read model's own outbox, counting replays in the
envelope's headers so a message that keeps failing cannot loop forever.
Consumers that had already handled the event skip it by its eventId; the
one that failed handles it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from readmodel.models import DeadLetter
from shopsite.events.deadletter import REPLAY_COUNT_HEADER
from shopsite.events.envelope import Event, InvalidEvent, format_timestamp, from_wire
from shopsite.events.schemas import DeadLetter as DeadLetterPayload
from shopsite.events.unit_of_work import unit_of_work

ALIAS = "read_model_service"
MAX_REPLAYS = 3


class ReplayRefused(Exception):
    pass


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


def replay(letter_id: str, corrected: dict[str, Any] | None = None) -> Event:
    """Publish the original (or corrected) event again; raises ReplayRefused with the reason."""
    with unit_of_work(ALIAS) as uow:
        row = DeadLetter.objects.using(ALIAS).select_for_update().filter(pk=letter_id).first()
        if row is None:
            raise LookupError(letter_id)
        if row.replay_count >= MAX_REPLAYS:
            raise ReplayRefused(f"replayed {row.replay_count} times already (limit {MAX_REPLAYS}); fix the cause")
        source = corrected if corrected is not None else row.payload
        try:
            event = from_wire(source)
        except InvalidEvent as exc:
            what = "the corrected event" if corrected is not None else "the original message"
            raise ReplayRefused(f"{what} is not a valid event: {exc.reason}") from exc
        if corrected is None and event.topic != row.source_topic and row.source_topic != "unknown":
            raise ReplayRefused(f"the original is a {event.type} but came from {row.source_topic}; send a corrected event")
        count = row.replay_count + 1
        event = dataclasses.replace(event, headers={**event.headers, REPLAY_COUNT_HEADER: count})
        uow.emit(event)
        row.status, row.replay_count, row.replayed_at = DeadLetter.REPLAYED, count, datetime.now(timezone.utc)
        row.save(using=ALIAS, update_fields=["status", "replay_count", "replayed_at"])
    return event
