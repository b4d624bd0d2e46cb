"""Retention purges only what is old and dispatched (run on every backend: its module declares every backend)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from prometheus_client import REGISTRY

from shopsite.events import retention
from shopsite.events.models import OutboxMessage, ProcessedEvent
from shopsite.services import SERVICES, task_queue

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]

NOW = datetime.now(timezone.utc)
DAY = timedelta(days=1)


def outbox_row(alias: str, *, dispatched_ago: timedelta | None, created_ago: timedelta, attempts: int = 0) -> str:
    event_id = str(uuid.uuid4())
    OutboxMessage.objects.using(alias).create(
        event_id=event_id, type="order.OrderCreated.v1", topic="order.OrderCreated.v1", key="o-1", payload={},
        created_at=NOW - created_ago, dispatched=dispatched_ago is not None, attempts=attempts,
        dispatched_at=NOW - dispatched_ago if dispatched_ago is not None else None)
    return event_id


def processed_row(alias: str, ago: timedelta) -> str:
    event_id = str(uuid.uuid4())
    ProcessedEvent.objects.using(alias).create(id=ProcessedEvent.key("c", event_id), consumer="c",
                                               event_id=event_id, at=NOW - ago)
    return event_id


def seed(alias: str) -> dict[str, list[str]]:
    return {
        "old_dispatched": [outbox_row(alias, dispatched_ago=4 * DAY, created_ago=5 * DAY) for _ in range(5)],
        "keep_outbox": [
            outbox_row(alias, dispatched_ago=DAY, created_ago=5 * DAY),  # dispatched recently, created long ago
            outbox_row(alias, dispatched_ago=None, created_ago=30 * DAY),  # never dispatched: pending
            outbox_row(alias, dispatched_ago=None, created_ago=30 * DAY, attempts=50),  # given up on: parked
        ],
        "old_processed": [processed_row(alias, 15 * DAY) for _ in range(3)],
        "keep_processed": [processed_row(alias, 13 * DAY), processed_row(alias, DAY)],
    }


def purged(service: str, table: str) -> float:
    return REGISTRY.get_sample_value("shopsite_purged_rows_total", {"service": service, "table": table}) or 0.0


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_purges_only_old_dispatched_outbox_rows_and_old_processed_events(service):
    rows = seed(service.alias)
    others = [s for s in SERVICES if s != service]
    untouched = {s.alias: seed(s.alias) for s in others[:1]}
    before = purged(service.name, retention.OUTBOX), purged(service.name, retention.PROCESSED_EVENTS)

    cutoffs = retention.Cutoffs.from_settings(now=NOW, outbox_hours=72, processed_hours=14 * 24)
    assert retention.purge(service.alias, cutoffs, batch_size=2) == {"outbox": 5, "processed_events": 3}

    left_outbox = set(OutboxMessage.objects.using(service.alias).values_list("event_id", flat=True))
    assert left_outbox == set(rows["keep_outbox"])
    left_processed = set(ProcessedEvent.objects.using(service.alias).values_list("event_id", flat=True))
    assert left_processed == set(rows["keep_processed"])
    # Counted in metrics, per service and table.
    assert purged(service.name, retention.OUTBOX) - before[0] == 5
    assert purged(service.name, retention.PROCESSED_EVENTS) - before[1] == 3
    # Another service's database is its own business.
    for alias, seeded in untouched.items():
        assert OutboxMessage.objects.using(alias).count() == 8
        assert ProcessedEvent.objects.using(alias).count() == 5
    # Nothing left to purge: a second run deletes nothing.
    assert retention.purge(service.alias, cutoffs, batch_size=2) == {"outbox": 0, "processed_events": 0}


def test_the_command_dry_run_deletes_nothing_and_the_real_run_purges_with_the_settings_defaults():
    for service in SERVICES:
        seed(service.alias)
    out = StringIO()
    call_command("purge_outbox", "--dry-run", stdout=out, stderr=StringIO())
    assert "would delete 25 outbox rows and 15 processed_events rows in 5 of 5 service databases" in out.getvalue()
    assert sum(OutboxMessage.objects.using(s.alias).count() for s in SERVICES) == 40

    out = StringIO()
    call_command("purge_outbox", "--services=orders,payment", "--batch-size=2", stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "deleted 10 outbox rows and 6 processed_events rows in 2 of 5 service databases" in text
    assert [line.split() for line in text.splitlines() if line.startswith(("orders", "payment", "total"))] == [
        ["orders", "5", "3"], ["payment", "5", "3"], ["total", "10", "6"]]
    assert OutboxMessage.objects.using("order_service").count() == 3
    assert OutboxMessage.objects.using("inventory_service").count() == 8


def test_beat_purges_every_service_on_its_own_queue():
    for service in SERVICES:
        entry = settings.CELERY_BEAT_SCHEDULE[f"purge-retention-{service.name}"]
        assert entry["task"] == retention.purge_expired.name
        assert entry["args"] == (service.alias,)
        assert entry["options"]["queue"] == task_queue(service)
        assert entry["schedule"] == settings.RETENTION_PURGE_SECONDS
    from shopsite.celery import app

    app.loader.import_default_modules()
    assert retention.purge_expired.name in app.tasks  # the worker knows the task beat sends

    rows = seed("shipping_service")
    assert retention.purge_expired("shipping_service") == {"outbox": 5, "processed_events": 3}
    assert set(OutboxMessage.objects.using("shipping_service").values_list("event_id", flat=True)) == set(
        rows["keep_outbox"])


def test_processed_events_outlive_the_brokers_default_retention():
    kafka_default_retention_hours = 7 * 24  # log.retention.hours
    assert settings.PROCESSED_EVENTS_RETENTION_HOURS >= 2 * kafka_default_retention_hours
