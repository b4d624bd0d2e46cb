"""A paused consumer loses nothing, even when partitions are handed to it during the pause (real broker)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Producer

from shopsite.events import topics
from shopsite.events.consumer import ConsumerSpec, MustPause, ServiceConsumer
from shopsite.events.kafka import new_consumer, producer_config
from shopsite.services import BY_NAME

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.kafka]

PAUSE_SECONDS = 40.0


class PausesOnce:
    """The consumer's processor: the first batch calls for a pause; afterwards records every message it gets."""

    def __init__(self) -> None:
        self.batches = 0
        self.holding = threading.Event()
        self.seen: list[tuple[int, int, bytes]] = []
        self.lock = threading.Lock()

    def process(self, batch) -> int:
        with self.lock:
            self.batches += 1
            if self.batches == 1:
                self.holding.set()
                raise MustPause("test: hold on")
            self.seen += [(m.partition(), m.offset(), m.value()) for m in batch]
        return 0

    def values(self) -> set[bytes]:
        with self.lock:
            return {v for _p, _o, v in self.seen}


def produce_markers(run: str, per_partition: int, partitions: int) -> set[bytes]:
    producer = Producer(producer_config())
    markers = set()
    for n in range(per_partition * partitions):
        value = f"hold-{run}-{n}".encode()
        producer.produce(topics.ORDER_CREATED, value=value, key=value, partition=n % partitions)
        markers.add(value)
    assert producer.flush(15) == 0
    return markers


class OtherMember:
    """A second member of the group, polling in its own thread (never committing) until told to leave."""

    def __init__(self, group_id: str) -> None:
        self.consumer = new_consumer(group_id)
        self.assigned = threading.Event()
        self.leave = threading.Event()
        self.consumer.subscribe([topics.ORDER_CREATED], on_assign=lambda _c, parts: parts and self.assigned.set())
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.leave.is_set():
                self.consumer.poll(0.2)
        finally:
            self.consumer.close()

    def go(self) -> None:
        self.leave.set()
        self.thread.join(30)


def test_partitions_assigned_during_a_pause_stay_paused_and_nothing_is_lost(kafka_settings, settings):
    settings.KAFKA_GROUP_PREFIX = f"test-hold-{uuid.uuid4().hex[:8]}"
    settings.DEAD_LETTER_PAUSE_SECONDS = PAUSE_SECONDS
    markers = produce_markers(uuid.uuid4().hex[:8], per_partition=25, partitions=settings.KAFKA_TOPIC_PARTITIONS)
    spec = ConsumerSpec(BY_NAME["readmodel"], {topics.ORDER_CREATED: lambda event, uow: None})
    other = OtherMember(spec.group_id)  # holds every partition until the consumer under test joins
    stop = threading.Event()
    loop = ServiceConsumer(spec, stop, batch_size=10)
    recorder = PausesOnce()
    loop.processor = recorder  # type: ignore[assignment] - the Kafka loop is under test, not the handlers
    thread = threading.Thread(target=loop.run, daemon=True)
    try:
        assert other.assigned.wait(60), "the other member was never assigned"
        thread.start()
        assert recorder.holding.wait(90), "the consumer never got its first batch"
        # It pauses with only the partitions it shares out; when the other member leaves, the rest are
        # handed to it during the pause, for the first time: they must be paused too, and nothing
        # fetched from them may be skipped.
        other.go()
        deadline = time.monotonic() + PAUSE_SECONDS + 60
        while not markers <= recorder.values() and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.2)
    finally:
        other.go()
        stop.set()
        thread.join(30)
    missing = markers - recorder.values()
    assert not missing, f"{len(missing)} of {len(markers)} messages were never processed (consumed while paused)"


class AppliesAPrefixThenPauses:
    """The first batch: its first three messages are applied, then the rest must wait (as over the budget)."""

    def __init__(self) -> None:
        self.first: list[tuple[int, int, bytes]] = []
        self.later: list[tuple[int, int, bytes]] = []
        self.lock = threading.Lock()

    def process(self, batch) -> int:
        with self.lock:
            if not self.first:
                self.first = [(m.partition(), m.offset(), m.value()) for m in batch]
                raise MustPause("test: the rest is over the budget", done=3)
            self.later += [(m.partition(), m.offset(), m.value()) for m in batch]
        return 0


def test_a_pause_after_a_prefix_commits_the_prefix_and_comes_back_for_the_rest_only(kafka_settings, settings):
    from confluent_kafka import TopicPartition

    settings.KAFKA_GROUP_PREFIX = f"test-prefix-{uuid.uuid4().hex[:8]}"
    settings.DEAD_LETTER_PAUSE_SECONDS = 2.0
    markers = produce_markers(uuid.uuid4().hex[:8], per_partition=5, partitions=settings.KAFKA_TOPIC_PARTITIONS)
    spec = ConsumerSpec(BY_NAME["readmodel"], {topics.ORDER_CREATED: lambda event, uow: None})
    stop = threading.Event()
    loop = ServiceConsumer(spec, stop, batch_size=10)
    recorder = AppliesAPrefixThenPauses()
    loop.processor = recorder  # type: ignore[assignment] - the Kafka loop is under test, not the handlers
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and thread.is_alive():
            with recorder.lock:
                if markers <= {v for _p, _o, v in recorder.first[:3] + recorder.later}:
                    break
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
    assert len(recorder.first) > 3
    prefix, rest = recorder.first[:3], recorder.first[3:]
    later = set(recorder.later)
    assert not later & set(prefix), "the applied prefix was handed over again"
    assert set(rest) <= later, "the rest of the batch was not come back to"
    assert markers <= {v for _p, _o, v in prefix} | {v for _p, _o, v in later}
    # The prefix's offsets were committed before the pause.
    check = new_consumer(spec.group_id)
    try:
        partition, offset, _value = prefix[-1]
        (committed,) = check.committed([TopicPartition(topics.ORDER_CREATED, partition)], timeout=10)
        assert committed.offset > offset
    finally:
        check.close()
