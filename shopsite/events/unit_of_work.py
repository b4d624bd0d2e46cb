"""One local transaction on one service database: state + outbox + inbox.

Handlers receive a UnitOfWork and never open transactions themselves, so a
handler's effects, the events it emits and its processed_events row commit
or roll back together. The backend switch lives here and nowhere else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from django.db import transaction

from shopsite.events import envelope
from shopsite.events.envelope import Event
from shopsite.events.models import OutboxMessage


class UnitOfWork:
    def __init__(self, alias: str):
        self.alias = alias
        self.emitted: list[Event] = []
        self._outbox_rows: list[OutboxMessage] = []
        self._after_commit: list[Callable[[], None]] = []

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (never if it rolls back).

        For side effects outside the database (ask a worker to publish, push to
        browsers): doing them inside the transaction could announce a change
        that then rolls back.
        """
        self._after_commit.append(callback)

    def emit(self, event: Event) -> Event:
        """Queue an event for publishing; it is written when the unit of work commits."""
        row = OutboxMessage(
            event_id=event.event_id,
            type=event.type,
            topic=event.topic,
            key=event.key,
            payload=event.to_wire(),
            created_at=datetime.now(timezone.utc),
        )
        self._outbox_rows.append(row)
        self.emitted.append(event)
        return event

    def emit_new(self, event_type: str, payload: Any, *, cause: Event | None = None,
                 correlation_id: str | None = None, causation_id: str | None = None, **kwargs: Any) -> Event:
        """Emit a new event; correlation and causation are carried over from `cause` when given."""
        corr = correlation_id or (cause.correlation_id if cause else None)
        if corr is None:
            raise ValueError("an event needs a correlationId (the saga id)")
        return self.emit(
            envelope.new_event(
                event_type, payload, correlation_id=corr,
                causation_id=causation_id or (cause.event_id if cause else None), **kwargs,
            )
        )

    def flush(self) -> None:
        if self._outbox_rows:
            # bulk_create keeps list order, so ids (and publish order) follow emit order.
            OutboxMessage.objects.using(self.alias).bulk_create(self._outbox_rows)
            self._outbox_rows = []


@contextlib.contextmanager
def unit_of_work(alias: str) -> Iterator[UnitOfWork]:
    """Open a transaction on `alias`; commit state and outbox rows together."""
    uow = UnitOfWork(alias)
    with transaction.atomic(using=alias):
        yield uow
        uow.flush()
    for callback in uow._after_commit:
        callback()
