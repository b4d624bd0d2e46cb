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
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, ContextManager

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import Model

from shopsite.events import bulk_sql, envelope, outbox_signal
from shopsite.events.envelope import Event
from shopsite.events.models import OutboxMessage


class UnitOfWork:
    def __init__(self, alias: str):
        self.alias = alias
        self.emitted: list[Event] = []
        self._outbox_rows: list[dict[str, Any]] = []
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
        self._outbox_rows.append({"event_id": event.event_id, "type": event.type, "topic": event.topic,
                                  "key": event.key, "payload": event.to_wire(), "created_at": None})
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

    def insert_rows(self, rows: Sequence[Model]) -> None:
        """Insert new rows of one model in bulk, in list order.

        A row whose primary key exists fails the transaction, as a plain
        INSERT does: that is what guards a row two processes create at once.
        """
        if not rows:
            return
        if bulk_sql.supported(self.alias):
            bulk_sql.insert(self.alias, rows)
        else:
            type(rows[0])._default_manager.using(self.alias).bulk_create(rows)

    def insert_values(self, model: type[Model], rows: Sequence[dict[str, Any]]) -> None:
        """insert_rows for rows given as {attname: value} (all with the same keys; defaults fill the rest).

        For the rows a batch writes many of and never reads back (inbox,
        outbox): on SQL backends no model instance is built for them.
        """
        if not rows:
            return
        if bulk_sql.supported(self.alias):
            bulk_sql.insert_values(self.alias, model, rows)
        else:
            model._default_manager.using(self.alias).bulk_create([model(**row) for row in rows])

    def locked(self, model: type[Model], pks: Collection[Any]) -> dict[Any, Model]:
        """The rows of `model` with these primary keys, by key, locked for this transaction.

        Locked in key order, so two transactions that lock common rows never
        wait on each other in a cycle (PostgreSQL; SQLite's IMMEDIATE
        transaction holds the whole database). A key without a row is absent:
        a row created meanwhile by another process is guarded by its primary
        key (a second insert fails).
        """
        if not pks:
            return {}
        if bulk_sql.supported(self.alias):
            rows = bulk_sql.load(self.alias, model, pks, lock=True)
        else:
            rows = list(model._default_manager.using(self.alias).select_for_update().filter(pk__in=list(pks))
                        .order_by("pk"))
        return {row.pk: row for row in rows}

    def existing_pks(self, model: type[Model], pks: Collection[Any]) -> set[Any]:
        """Which of these primary keys have a row of `model` (read in this transaction)."""
        if not pks:
            return set()
        if bulk_sql.supported(self.alias):
            return bulk_sql.existing_pks(self.alias, model, pks)
        return set(model._default_manager.using(self.alias).filter(pk__in=pks).values_list("pk", flat=True))

    def update_rows(self, rows: Sequence[Model], fields: list[str]) -> None:
        """Write `fields` of rows of one model that exist and were loaded (locked) in this transaction.

        Django's bulk_update builds a CASE WHEN expression per row and field,
        which costs more CPU than the queries it saves; on SQL backends
        bulk_sql.update writes just those columns (see there). Only for rows
        known to exist: a new row goes through insert_rows, so that another
        process creating it at the same time fails on the primary key instead
        of being overwritten.
        """
        if not rows:
            return
        if bulk_sql.supported(self.alias):
            bulk_sql.update(self.alias, rows, fields)
        else:
            type(rows[0])._default_manager.using(self.alias).bulk_update(rows, fields)

    def flush(self) -> None:
        if self._outbox_rows:
            now = datetime.now(timezone.utc)  # once per transaction, not once per event
            for row in self._outbox_rows:
                row["created_at"] = now
            # Inserted in list order, so ids (and publish order) follow emit order.
            self.insert_values(OutboxMessage, self._outbox_rows)
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
