"""The relay loop a worker runs per outbox: woken by a commit in its process or by Redis from another one."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import redis
from django.db import connections

from shopsite.events import outbox_signal
from shopsite.events.models import OutboxMessage
from shopsite.events.outbox_signal import Listener
from shopsite.events.relay_loop import RelayLoop
from shopsite.events.unit_of_work import unit_of_work
from tests.factories import Saga

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.django_db(transaction=True, serialized_rollback=True),
              pytest.mark.kafka]

ALIAS = "read_model_service"
NEVER = 3600.0  # the loop's own poll: only a wake-up can make it publish within a test


@pytest.fixture
def redis_settings(infrastructure, settings) -> str:
    settings.REDIS_URL = infrastructure.redis_url
    outbox_signal._client = None  # a client for this Redis, not one made for an earlier URL
    yield infrastructure.redis_url
    outbox_signal._client = None


@pytest.fixture
def running_loop(kafka_settings, redis_settings) -> Iterator[RelayLoop]:
    loop = RelayLoop(ALIAS, poll_seconds=NEVER)
    stop = threading.Event()
    threads = [threading.Thread(target=loop.run, daemon=True),
               threading.Thread(target=Listener([ALIAS], stop).run, daemon=True)]
    for thread in threads:
        thread.start()
    _wait(lambda: outbox_signal.relayed_here(ALIAS), "the loop to take its outbox")
    try:
        yield loop
    finally:
        loop.stop()
        stop.set()
        for thread in threads:
            thread.join(30)
        connections.close_all()


def _wait(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _dispatched(event_id: str) -> bool:
    return OutboxMessage.objects.using(ALIAS).get(event_id=event_id).dispatched


def test_a_commit_in_the_relaying_process_wakes_its_loop(running_loop):
    event = Saga().created()
    with unit_of_work(ALIAS) as uow:
        uow.emit(event)
    _wait(lambda: _dispatched(event.event_id), "the committed row to be published")


def test_a_wake_up_from_another_process_arrives_through_redis(running_loop, redis_settings):
    event = Saga().created()
    OutboxMessage.objects.using(ALIAS).create(  # written without a unit of work: nothing woke the loop
        event_id=event.event_id, type=event.type, topic=event.topic, key=event.key, payload=event.to_wire(),
        created_at=datetime.now(timezone.utc))
    time.sleep(0.5)
    assert not _dispatched(event.event_id)
    redis.Redis.from_url(redis_settings).publish(outbox_signal.channel(ALIAS), b"1")  # what announce() sends elsewhere
    _wait(lambda: _dispatched(event.event_id), "the row to be published after the Redis wake-up")


def test_announce_without_a_local_loop_publishes_on_the_outbox_channel(redis_settings):
    alias = "payment_service"
    assert not outbox_signal.relayed_here(alias)
    pubsub = redis.Redis.from_url(redis_settings).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(outbox_signal.channel(alias))
    try:
        _wait(lambda: pubsub.get_message(timeout=0.05) is None and pubsub.subscribed, "the subscription")
        outbox_signal.announce(alias)
        messages = [pubsub.get_message(timeout=1.0) for _ in range(3)]
    finally:
        pubsub.close()
    assert [m["channel"] for m in messages if m] == [outbox_signal.channel(alias).encode()]


def test_the_loop_publishes_what_was_committed_before_it_started(kafka_settings, redis_settings):
    events = [Saga(order_id=f"early-{uuid.uuid4()}").created() for _ in range(3)]
    with unit_of_work(ALIAS) as uow:
        for event in events:
            uow.emit(event)
    loop = RelayLoop(ALIAS, poll_seconds=NEVER)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: all(_dispatched(e.event_id) for e in events), "rows from before the start")
    finally:
        loop.stop()
        thread.join(30)
