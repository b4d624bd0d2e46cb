"""The lost-log watch against a real broker killed (-9) and restarted empty: what it had acknowledged goes out again."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from shopsite.events import lost_log, outbox_signal, relay, topics
from shopsite.events.consumer import ConsumerSpec, ServiceConsumer
from shopsite.events.lost_log import LostLogWatch
from shopsite.events.models import OutboxMessage
from shopsite.events.unit_of_work import unit_of_work
from shopsite.services import BY_NAME
from tests.factories import Saga
from tests.integration.conftest import restart_empty
from tests.integration.test_consumer_hold import produce_markers
from tests.integration.test_relay import read_topics
from tests.system.waiting import wait_for

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.django_db, pytest.mark.kafka]

ALIAS = "read_model_service"


def test_rows_the_broker_acknowledged_before_it_restarted_empty_are_published_again(own_broker):
    saga = Saga()
    events = [saga.created(), saga.reserved()]
    with unit_of_work(ALIAS) as uow:
        for event in events:
            uow.emit(event)
    assert relay.dispatch_pending(ALIAS) == 2  # acknowledged, then lost with the broker's log
    wake = threading.Event()
    outbox_signal.register(ALIAS, wake)  # as if this process's relay loop held the outbox
    try:
        watch = LostLogWatch([ALIAS], threading.Event(), window_seconds=300)
        assert watch.check() is None  # the first look: the topics as they are
        assert watch.check() is None

        restart_empty(own_broker)
        deadline = time.monotonic() + 60
        found = None
        while found is None and time.monotonic() < deadline:
            found = watch.check()  # recreates the missing topics, then sees their new ids
            time.sleep(0.2)
    finally:
        outbox_signal.unregister(ALIAS, wake)

    assert found == {"readmodel": 2}
    assert wake.is_set()
    assert relay.dispatch_pending(ALIAS, timeout=15) == 2  # with a new producer: the old id died with the log
    assert not OutboxMessage.objects.using(ALIAS).filter(dispatched=False).exists()
    received = read_topics(own_broker.kafka_bootstrap, [e.topic for e in events], 2, saga.order_id)
    assert sorted(json.loads(m.value())["eventId"] for m in received) == sorted(e.event_id for e in events)
    assert watch.check() is None  # once per loss


class Records:
    """The consumer's processor: records what it is given (the Kafka loop is under test, not the handlers)."""

    def __init__(self) -> None:
        self.values: set[bytes] = set()
        self.lock = threading.Lock()

    def process(self, batch) -> int:
        with self.lock:
            self.values |= {m.value() for m in batch}
        return 0

    def has(self, wanted: set[bytes]) -> bool:
        with self.lock:
            return wanted <= self.values


def test_a_consumer_reads_what_is_published_after_the_broker_restarted_empty_twice(own_broker, settings):
    # Twice, a few seconds apart: the client has renewed its membership on the first restarted broker when
    # the second restart comes. A client replaced then left the group leaderless for good (stuck rebalance).
    settings.KAFKA_GROUP_PREFIX = f"test-lost-log-{uuid.uuid4().hex[:8]}"
    partitions = settings.KAFKA_TOPIC_PARTITIONS
    spec = ConsumerSpec(BY_NAME["readmodel"], {topics.ORDER_CREATED: lambda event, uow: None})
    stop = threading.Event()
    loop = ServiceConsumer(spec, stop, batch_size=10)
    recorder = Records()
    loop.processor = recorder  # type: ignore[assignment]
    watch = LostLogWatch([], stop)  # this process's side of a lost log: its consumers read the new one
    threads = [threading.Thread(target=loop.run, daemon=True), threading.Thread(target=watch.run, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        before = produce_markers(uuid.uuid4().hex[:8], per_partition=5, partitions=partitions)
        wait_for(lambda: recorder.has(before), 90, "the messages published before the restarts")
        for _ in range(2):
            epoch = lost_log.epoch()
            restart_empty(own_broker)
            wait_for(lambda: lost_log.epoch() > epoch, 60, "the watch to notice the lost log")
        after = produce_markers(uuid.uuid4().hex[:8], per_partition=5, partitions=partitions)
        wait_for(lambda: recorder.has(after) or not threads[0].is_alive(), 120,
                 "the messages published after the restarts")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert recorder.has(after)
