"""Retention: purge dispatched outbox rows and processed_events rows once they are old.

Both tables grow with every event; neither is needed for ever:

* an outbox row is only history once the broker acknowledged it
  (dispatched=True); rows not yet dispatched, or parked by the relay, are
  never touched, whatever their age;
* a processed_events row must outlive every copy of its message on the
  broker: a message still on a topic can be delivered again (a group
  reset, a rewind, a rebuild's replay) and, without its row, would be
  applied twice. Hence its default of twice the broker's usual retention
  (see PROCESSED_EVENTS_RETENTION_HOURS in shopsite/settings.py).

Deletes go in batches of primary keys, one short transaction each, so a
purge never holds locks long on a database the consumers are writing to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from celery import shared_task
from django.conf import settings
from django.db.models import Model, QuerySet

from shopsite.events import metrics
from shopsite.events.models import OutboxMessage, ProcessedEvent
from shopsite.events.unit_of_work import atomic
from shopsite.jsonlog import log_context
from shopsite.services import BY_ALIAS

OUTBOX, PROCESSED_EVENTS = "outbox", "processed_events"


@dataclass(frozen=True)
class Cutoffs:
    outbox: datetime  # dispatched before this
    processed_events: datetime  # processed before this

    @classmethod
    def from_settings(cls, now: datetime | None = None, outbox_hours: float | None = None,
                      processed_hours: float | None = None) -> Cutoffs:
        now = now or datetime.now(timezone.utc)
        outbox_hours = settings.OUTBOX_RETENTION_HOURS if outbox_hours is None else outbox_hours
        processed_hours = settings.PROCESSED_EVENTS_RETENTION_HOURS if processed_hours is None else processed_hours
        return cls(now - timedelta(hours=outbox_hours), now - timedelta(hours=processed_hours))


def expired(alias: str, cutoffs: Cutoffs) -> dict[str, QuerySet]:
    """What retention would delete in `alias`, per table."""
    return {
        OUTBOX: OutboxMessage.objects.using(alias).filter(dispatched=True, dispatched_at__lt=cutoffs.outbox),
        PROCESSED_EVENTS: ProcessedEvent.objects.using(alias).filter(at__lt=cutoffs.processed_events),
    }


def _delete_in_batches(alias: str, query: QuerySet, batch_size: int, progress: Callable[[int], None]) -> int:
    model: type[Model] = query.model
    deleted = 0
    while True:
        keys = list(query.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not keys:
            return deleted
        with atomic(alias):
            # Filtered again by the same conditions: a row that changed since it was listed stays.
            count, _ = query.filter(pk__in=keys).delete()
        if count == 0:
            return deleted
        deleted += count
        progress(count)
        if len(keys) < batch_size:
            return deleted


def purge(alias: str, cutoffs: Cutoffs, batch_size: int | None = None,
          progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Delete what has expired in `alias`; returns rows deleted per table (and counts them in metrics)."""
    batch_size = batch_size or settings.RETENTION_PURGE_BATCH
    service = BY_ALIAS[alias].name
    result: dict[str, int] = {}
    for table, query in expired(alias, cutoffs).items():
        def counted(n: int, table: str = table) -> None:
            metrics.PURGED_ROWS.labels(service, table).inc(n)
            if progress:
                progress(table, n)

        result[table] = _delete_in_batches(alias, query, batch_size, counted)
    return result


@shared_task(name="shopsite.events.retention.purge_expired", ignore_result=True)
def purge_expired(alias: str) -> dict[str, int]:
    """The beat-scheduled purge of one service's database (CELERY_BEAT_SCHEDULE)."""
    with log_context(service=BY_ALIAS[alias].name):
        return purge(alias, Cutoffs.from_settings())
