"""Relay faults against a real broker: a row the broker can never take, and a producer fenced by a broker restart."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest
from prometheus_client import REGISTRY

from shopsite.events import kafka, relay, topics
from shopsite.events.models import OutboxMessage
from shopsite.events.unit_of_work import unit_of_work
from tests.factories import Saga
from tests.integration.conftest import restart_empty
from tests.integration.test_relay import read_topics

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.django_db, pytest.mark.kafka]

ALIAS = "read_model_service"


def _parked_count(topic: str) -> float:
    return REGISTRY.get_sample_value("shopsite_outbox_parked_total", {"service": "readmodel", "topic": topic}) or 0.0


def test_a_row_too_large_for_the_broker_is_parked_and_the_rows_after_it_flow(kafka_settings):
    saga = Saga()
    created, reserved = saga.created(), saga.reserved()
    with unit_of_work(ALIAS) as uow:
        uow.emit(created)
    # Over the producer's message.max.bytes (1 MB): produce() itself refuses it, every time.
    huge = OutboxMessage.objects.using(ALIAS).create(
        event_id=str(uuid.uuid4()), type=topics.ORDER_CREATED, topic=topics.topic_for(topics.ORDER_CREATED),
        key=saga.order_id, payload={"padding": "x" * 2_000_000}, created_at=datetime.now(timezone.utc))
    with unit_of_work(ALIAS) as uow:
        uow.emit(reserved)
    parked_before = _parked_count(huge.topic)

    assert relay.dispatch_pending(ALIAS, timeout=15) == 2

    huge.refresh_from_db()
    assert not huge.dispatched and huge.parked_at is not None and huge.status == "parked"
    assert "MSG_SIZE_TOO_LARGE" in huge.last_error
    assert _parked_count(huge.topic) == parked_before + 1
    others = OutboxMessage.objects.using(ALIAS).exclude(pk=huge.pk)
    assert all(r.dispatched for r in others) and others.count() == 2
    assert relay.backlog(ALIAS)[0] == 0  # parked is not backlog: the relay does not try it again
    assert relay.dispatch_pending(ALIAS) == 0
    received = read_topics(kafka_settings, [created.topic, reserved.topic], 2, saga.order_id)
    assert sorted(json.loads(m.value())["eventId"] for m in received) == sorted([created.event_id, reserved.event_id])


def _emit_one(saga: Saga):
    event = saga.created()
    with unit_of_work(ALIAS) as uow:
        uow.emit(event)
    return OutboxMessage.objects.using(ALIAS).get(event_id=event.event_id)


def test_after_the_broker_is_killed_and_restarted_empty_the_relay_replaces_its_fenced_producer(own_broker):
    before = _emit_one(Saga())
    assert relay.dispatch_pending(ALIAS) == 1  # the shared producer now has a producer id on the old broker

    restart_empty(own_broker)
    kafka.ensure_topics()

    after = _emit_one(saga := Saga())
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        relay.dispatch_pending(ALIAS, timeout=3)
        after.refresh_from_db()
        if after.dispatched:
            break
        time.sleep(0.5)
    before.refresh_from_db()
    assert before.dispatched
    assert after.dispatched, f"never published after the broker came back; last error: {after.last_error}"
    received = read_topics(own_broker.kafka_bootstrap, [after.topic], 1, saga.order_id)
    assert [json.loads(m.value())["eventId"] for m in received] == [after.event_id]
