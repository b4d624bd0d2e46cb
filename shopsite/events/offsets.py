"""A consumer's offsets: noted after each applied batch, committed asynchronously and coalesced.

Only a batch whose local transaction committed is ever noted, so offsets
still follow the database commit. What is noted goes to the broker without
waiting for the answer, at most every COMMIT_INTERVAL_SECONDS while batches
keep coming and at once when the consumer finds nothing new, so a busy
consumer sends a commit per interval instead of a commit (and a wait for
it) per batch. Offsets not committed yet when the process dies, or a commit
that fails, mean redelivery, which the inbox (processed_events) absorbs.
Before the consumer holds, loses partitions or closes, what is noted is
committed and waited for, so nothing applied is handed to another member
uncommitted when that can be avoided.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

log = logging.getLogger("shopsite.kafka")

COMMIT_INTERVAL_SECONDS = 0.5


class _Message(Protocol):
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...


class Offsets:
    def __init__(self, consumer_name: str, interval: float = COMMIT_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.consumer_name = consumer_name
        self.interval = interval
        self.clock = clock
        self._noted: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to read
        self._due = 0.0

    def note(self, batch: Iterable[_Message]) -> None:
        """The batch is applied and committed locally: its offsets may be committed."""
        for m in batch:
            key = (m.topic(), m.partition())
            self._noted[key] = max(self._noted.get(key, 0), m.offset() + 1)

    def commit_soon(self, consumer: Any, *, idle: bool) -> None:
        """Send what is noted without waiting, if the interval has passed or the consumer is idle."""
        if not self._noted or (not idle and self.clock() < self._due):
            return
        self._send(consumer, self._take(), asynchronous=True)

    def commit_now(self, consumer: Any, partitions: Sequence[TopicPartition] | None = None) -> None:
        """Send what is noted (of `partitions` only, when given) and wait for the answer."""
        offsets = self._take(None if partitions is None else {(tp.topic, tp.partition) for tp in partitions})
        if offsets:
            self._send(consumer, offsets, asynchronous=False)

    def forget(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        """Drop what is noted (of `partitions` only, when given): partitions lost, or a broker that lost its state.

        Those messages are redelivered and deduplicated.
        """
        self._take(None if partitions is None else {(tp.topic, tp.partition) for tp in partitions})

    def _take(self, keys: set[tuple[str, int]] | None = None) -> list[TopicPartition]:
        taken = [TopicPartition(t, p, o) for (t, p), o in self._noted.items() if keys is None or (t, p) in keys]
        for tp in taken:
            del self._noted[(tp.topic, tp.partition)]
        self._due = self.clock() + self.interval
        return taken

    def _send(self, consumer: Any, offsets: list[TopicPartition], *, asynchronous: bool) -> None:
        try:
            consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            commit_failed(self.consumer_name, exc.args[0])


def commit_failed(consumer_name: str, err: KafkaError | Any) -> None:
    """A commit failed (broker away, group rebalancing): only redelivery follows, which the inbox absorbs."""
    log.warning("offset commit failed; messages may be redelivered (deduplicated): %s", err,
                extra={"consumer": consumer_name, "kafka_error": str(err)})


def on_commit_callback(consumer_name: str) -> Callable[[KafkaError | None, list[TopicPartition]], None]:
    """The consumer's `on_commit`: reports asynchronous commits that failed."""

    def on_commit(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            commit_failed(consumer_name, err)
            return
        for tp in partitions or []:
            if tp.error is not None:
                commit_failed(consumer_name, tp.error)

    return on_commit
