"""A broker that lost its log: the worker notices its topics were created again and republishes, in every outbox
it runs, the rows the broker had acknowledged. Driven without Kafka: the watch is given the topic ids it sees."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from shopsite.events import lost_log, outbox_signal, relay, topics
from shopsite.events.models import OutboxMessage
from shopsite.services import SERVICES

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]

WINDOW = 300.0
ALIASES = [s.alias for s in SERVICES]


class BrokerView:
    """What the watch sees of the broker: the event topics' ids, or None while it does not answer."""

    def __init__(self) -> None:
        self.ids: dict[str, str] | None = self.created()

    @staticmethod
    def created() -> dict[str, str]:
        return {t: uuid.uuid4().hex for t in lost_log.EVENT_TOPICS}

    def __call__(self) -> Mapping[str, str] | None:
        return self.ids


def row(alias: str, *, dispatched_ago: float | None, parked: bool = False) -> OutboxMessage:
    now = datetime.now(timezone.utc)
    return OutboxMessage.objects.using(alias).create(
        event_id=str(uuid.uuid4()), type=topics.ORDER_CREATED, topic=topics.topic_for(topics.ORDER_CREATED),
        key=str(uuid.uuid4()), payload={}, created_at=now - timedelta(hours=2),
        dispatched=dispatched_ago is not None,
        dispatched_at=now - timedelta(seconds=dispatched_ago) if dispatched_ago is not None else None,
        parked_at=now if parked else None)


@pytest.fixture
def wakes() -> Iterator[dict[str, threading.Event]]:
    """Each outbox's relay wake-up, as if this process's relay loops held them all."""
    events = {alias: threading.Event() for alias in ALIASES}
    for alias, event in events.items():
        outbox_signal.register(alias, event)
    yield events
    for alias, event in events.items():
        outbox_signal.unregister(alias, event)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_when_the_topics_were_created_again_every_outbox_publishes_its_recent_rows_again(wakes):
    rows = {alias: {"recent": row(alias, dispatched_ago=10), "old": row(alias, dispatched_ago=WINDOW + 60),
                    "pending": row(alias, dispatched_ago=None), "parked": row(alias, dispatched_ago=None, parked=True),
                    "latest": row(alias, dispatched_ago=1)}
            for alias in ALIASES}
    broker = BrokerView()
    watch = lost_log.LostLogWatch(ALIASES, threading.Event(), look=broker, window_seconds=WINDOW)
    assert watch.check() is None  # the first look is what the broker is
    broker.ids = None
    assert watch.check() is None  # unreachable is not lost
    broker.ids = dict(watch.known or {})
    assert watch.check() is None  # back with its topics: nothing was lost
    assert not any(e.is_set() for e in wakes.values())
    assert all(relay.pending(alias).count() == 1 for alias in ALIASES)
    epoch, lost = lost_log.epoch(), sample("shopsite_kafka_log_lost_total")
    republished = {s.name: sample("shopsite_outbox_republished_total", {"service": s.name}) for s in SERVICES}

    broker.ids = BrokerView.created()  # restarted empty; its topics were created again
    assert watch.check() == {s.name: 2 for s in SERVICES}

    for alias, seeded in rows.items():
        again = list(relay.pending(alias).order_by("id").values_list("event_id", flat=True))
        # In outbox order, so the relay publishes each order's events in the order they were written.
        assert again == [seeded[k].event_id for k in ("recent", "pending", "latest")]
        old = OutboxMessage.objects.using(alias).get(pk=seeded["old"].pk)
        assert old.dispatched and old.dispatched_at is not None  # dispatched before the window: left alone
        parked = OutboxMessage.objects.using(alias).get(pk=seeded["parked"].pk)
        assert not parked.dispatched and parked.parked_at is not None  # still set aside
        assert wakes[alias].is_set()
    assert lost_log.epoch() == epoch + 1  # the process's consumers read the new log from its start
    assert sample("shopsite_kafka_log_lost_total") == lost + 1
    for s in SERVICES:
        assert sample("shopsite_outbox_republished_total", {"service": s.name}) == republished[s.name] + 2

    assert watch.check() is None  # once per loss
    assert lost_log.epoch() == epoch + 1


def test_a_worker_republishes_only_the_outboxes_it_runs(wakes):
    mine, other = ALIASES[0], ALIASES[1]
    recent = {alias: row(alias, dispatched_ago=5) for alias in (mine, other)}
    broker = BrokerView()
    watch = lost_log.LostLogWatch([mine], threading.Event(), look=broker, window_seconds=WINDOW)
    watch.check()
    broker.ids = BrokerView.created()

    assert watch.check() == {SERVICES[0].name: 1}

    assert [r.pk for r in relay.pending(mine)] == [recent[mine].pk]
    assert not relay.pending(other).exists()  # the worker running that service republishes it
    assert wakes[mine].is_set() and not wakes[other].is_set()
