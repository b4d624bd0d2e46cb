"""Talking to the stack's broker directly: partitions, committed offsets, producing raw bytes."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

COPY_HEADER = "x-fault-copy"


def partitions(bootstrap: str, topic: str) -> list[int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=15)
    return sorted(metadata.topics[topic].partitions)


def committed(bootstrap: str, group: str, where: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The group's committed offset per (topic, partition); -1001 when none. Reads without joining the group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(t, p) for t, p in where], timeout=15)
        return {(tp.topic, tp.partition): tp.offset for tp in found}
    finally:
        consumer.close()


@dataclass
class Delivery:
    topic: str
    partition: int
    offset: int | None  # None: the broker (or the producer's size limit) refused it
    error: str | None = None


def produce_raw(bootstrap: str, records: list[tuple[str, int, bytes, bytes]], timeout: float = 120) -> list[Delivery]:
    """Produce (topic, partition, key, value) one by one; a refused message is reported, not raised."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "message.max.bytes": 16 * 1024 * 1024})
    results: list[Delivery] = []

    for topic, partition, key, value in records:
        def on_delivery(err: KafkaError | None, msg: Any, topic: str = topic, partition: int = partition) -> None:
            if err is not None:
                results.append(Delivery(topic, partition, None, str(err)))
            else:
                results.append(Delivery(msg.topic(), msg.partition(), msg.offset()))
        try:
            producer.produce(topic, key=key, value=value, partition=partition, on_delivery=on_delivery)
        except Exception as exc:  # noqa: BLE001 - e.g. MSG_SIZE_TOO_LARGE raised by produce() itself
            results.append(Delivery(topic, partition, None, f"{type(exc).__name__}: {exc}"))
        producer.poll(0)
    remaining = producer.flush(timeout)
    assert remaining == 0, f"{remaining} messages neither delivered nor refused in {timeout}s"
    return results


@dataclass
class DuplicateStorm:
    """Re-produces every message of `topics` twice more: same topic, partition, key, value and headers.

    Assigns itself the partitions at their end (no consumer group) so it
    copies only what is produced from now on, and marks its copies so it
    never copies a copy.
    """

    bootstrap: str
    topics: list[str]
    copies: int = 2
    seen: int = 0
    produced: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"fault-storm-{uuid.uuid4()}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        assignment = []
        for topic in self.topics:
            for p in partitions(self.bootstrap, topic):
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
                assignment.append(TopicPartition(topic, p, high))
        consumer.assign(assignment)
        self._thread = threading.Thread(target=self._run, args=(consumer,), name="duplicate-storm", daemon=True)
        self._thread.start()

    def _run(self, consumer: Consumer) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5})

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.produced += 1

        try:
            while not self._stop.is_set():
                for msg in consumer.consume(num_messages=500, timeout=0.2):
                    if msg.error() is not None:
                        continue
                    headers = list(msg.headers() or [])
                    if any(k == COPY_HEADER for k, _ in headers):
                        continue
                    self.seen += 1
                    for _ in range(self.copies):
                        producer.produce(msg.topic(), key=msg.key(), value=msg.value(), partition=msg.partition(),
                                         headers=[*headers, (COPY_HEADER, b"1")], on_delivery=on_delivery)
                producer.poll(0)
            producer.flush(30)
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
