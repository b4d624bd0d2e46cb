"""Relay faults against a real broker: a row the broker can never take, and a producer fenced by a broker restart."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shopsite.events import kafka, relay, topics
from shopsite.events.models import OutboxMessage
from shopsite.events.unit_of_work import unit_of_work
from shopsite.supervisor import Stack, StackConfig
from tests.factories import Saga
from tests.integration.test_relay import read_topics

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.django_db, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.fixture
def own_broker(settings):
    """A tansu broker of this test's own, which the test kills (-9) and restarts on the same port."""
    artifacts = ROOT / "test-artifacts" / f"relay-faults-{int(time.time())}"
    stack = Stack(StackConfig(base_dir=ROOT, var_dir=artifacts / "var", log_dir=artifacts / "logs",
                              force_embedded_redis=True))
    stack.start_infrastructure()
    kafka.close_shared_producer(timeout=0)
    settings.KAFKA_BOOTSTRAP_SERVERS = stack.kafka_bootstrap
    try:
        kafka.ensure_topics()
        yield stack
    finally:
        kafka.close_shared_producer(timeout=0)
        stack.stop()


def _emit_one(saga: Saga):
    event = saga.created()
    with unit_of_work(ALIAS) as uow:
        uow.emit(event)
    return OutboxMessage.objects.using(ALIAS).get(event_id=event.event_id)


def test_after_the_broker_is_killed_and_restarted_empty_the_relay_replaces_its_fenced_producer(own_broker):
    before = _emit_one(Saga())
    assert relay.dispatch_pending(ALIAS) == 1  # the shared producer now has a producer id on the old broker

    os.kill(own_broker.pid("kafka"), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while own_broker.dead_children() != ["kafka"] and time.monotonic() < deadline:
        time.sleep(0.1)
    own_broker.start_child("kafka")  # the same port, no state: no topics, no producer ids
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
