"""One local transaction on one service database: state + outbox + inbox.

Handlers receive a UnitOfWork and never open transactions themselves, so a
handler's effects, the events it emits and its processed_events row commit
or roll back together. The backend switch lives here and nowhere else:
SQL backends use Django's transaction.atomic; MongoDB uses
django-mongodb-backend's own atomic (a session transaction, which needs a
replica set), because Django's atomic is a no-op there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, ContextManager

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction

from shopsite.events import envelope, outbox_signal
from shopsite.events.envelope import Event
from shopsite.events.models import OutboxMessage


class UnitOfWork:
    def __init__(self, alias: str):
        self.alias = alias
        self.emitted: list[Event] = []
        self._outbox_rows: list[OutboxMessage] = []
        self._announced = False

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (never if it rolls back).

        For side effects outside the database (ask a worker to publish, push to
        browsers): doing them inside the transaction could announce a change
        that then rolls back. The callback joins the connection's own list of
        commit hooks, which both Django's atomic and django-mongodb-backend's
        atomic run after their outermost commit and drop on rollback.
        """
        transaction.on_commit(callback, using=self.alias)

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
            if not self._announced:
                # Publishing after commit: wake the outbox's relay loop (an Event or one Redis PUBLISH).
                self._announced = True
                alias = self.alias
                self.on_commit(lambda: outbox_signal.announce(alias))


def atomic(alias: str) -> ContextManager[Any]:
    """The backend's own transaction on `alias`.

    Nested inside another one on the same alias: SQL makes a savepoint,
    MongoDB (no savepoints) joins the outer transaction.
    """
    connection = connections[alias]
    if connection.vendor != "mongodb":
        return transaction.atomic(using=alias)
    from django_mongodb_backend import transaction as mongo_transaction

    # Without a replica set the backend would run every write in autocommit
    # mode or fail on the first one: refuse loudly rather than lose atomicity.
    if not connection.features._supports_transactions:
        raise ImproperlyConfigured(
            f"database {alias!r}: MongoDB transactions need a replica set or sharded cluster "
            "(MONGODB_URI with replicaSet=...); see the README's Databases section")
    return mongo_transaction.atomic(using=alias)


@contextlib.contextmanager
def unit_of_work(alias: str) -> Iterator[UnitOfWork]:
    """Open a transaction on `alias`; commit state and outbox rows together."""
    uow = UnitOfWork(alias)
    with atomic(alias):
        yield uow
        uow.flush()
