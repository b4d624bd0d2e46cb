"""The consumer runtime: Kafka batch -> validated events -> handlers -> commit.

One place owns decoding, validation, deduplication, the transaction,
offsets, metrics and errors, so handlers stay plain functions of
(event, unit of work). Guarantees, in order of importance:

1. An event's effects, the events it emits and its processed_events row
   commit in one local transaction; offsets are committed only after it.
2. A message that can never be handled (not JSON, unknown type, invalid
   schema, wrong topic) is dead-lettered and the partition moves on.
3. A handler that fails is retried with bounded backoff, then dead-lettered.
4. A batch shares one transaction; if anything in it fails, the batch is
   replayed one message per transaction so one bad message cannot take its
   neighbours down with it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from django.conf import settings
from django.db import connections

from shopsite.events import deadletter, metrics, topics
from shopsite.events.envelope import Event, InvalidEvent, decode
from shopsite.events.kafka import (MISSING_TOPIC_ERRORS, BrokerWatch, ensure_topics, ensure_topics_soon, kafka_log,
                                   new_consumer)
from shopsite.events.lag import LagReporter
from shopsite.events.models import ProcessedEvent
from shopsite.events.unit_of_work import UnitOfWork, unit_of_work
from shopsite.jsonlog import log_context
from shopsite.services import Service

log = logging.getLogger(__name__)

Handler = Callable[[Event, UnitOfWork], None]

BROKER_PROBE_SECONDS = 1.0  # while every broker is down, how often the loop checks for one


class PermanentHandlerError(Exception):
    """Raised by a handler for an event it can never apply: dead-lettered without retries."""


class MustPause(Exception):
    """The consumer cannot safely move on: pause, then retry the same uncommitted messages."""


class DeadLetterLimitReached(MustPause):
    """Too many dead letters too fast: more likely a bad deploy than bad messages. Stop, don't dead-letter."""


class DeadLetterNotStored(MustPause):
    """Storing a dead letter failed: dead-lettering it onto the topic it came from would loop."""


class DeadLetterBudget:
    """At most `limit` dead letters per `window` seconds for one consumer (a sliding window)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._spent: list[float] = []

    def check(self, wanted: int) -> None:
        """Raise DeadLetterLimitReached if `wanted` more dead letters would exceed the budget."""
        now = self.clock()
        self._spent = [t for t in self._spent if now - t < self.window]
        if wanted and len(self._spent) + wanted > self.limit:
            raise DeadLetterLimitReached(
                f"{len(self._spent) + wanted} dead letters within {self.window:.0f}s exceeds the limit of {self.limit}")

    def spend(self, count: int) -> None:
        self._spent += [self.clock()] * count


class KafkaMessage(Protocol):
    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...
    def error(self) -> KafkaError | None: ...


@dataclass(frozen=True)
class ConsumerSpec:
    """A service's consumer, declared as data: which events it handles and how."""

    service: Service
    handlers: Mapping[str, Handler]

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def group_id(self) -> str:
        return f"{settings.KAFKA_GROUP_PREFIX}.{self.service.name}"

    @property
    def topics(self) -> list[str]:
        return sorted(topics.topic_for(t) for t in self.handlers)


@dataclass
class _Item:
    message: KafkaMessage
    event: Event | None = None
    invalid: InvalidEvent | None = None


@dataclass
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: Sequence[float] = (0.05, 0.25, 1.0)
    sleep: Callable[[float], None] = field(default=time.sleep)


class BatchProcessor:
    """Applies a batch of messages to one service database. Kafka-free, so tests drive it directly."""

    def __init__(self, spec: ConsumerSpec, retry: RetryPolicy | None = None, budget: DeadLetterBudget | None = None):
        self.spec = spec
        self.alias = spec.service.alias
        self.retry = retry or RetryPolicy()
        self.budget = budget or DeadLetterBudget(settings.DEAD_LETTER_LIMIT_PER_MINUTE)

    def process(self, messages: Sequence[KafkaMessage]) -> int:
        """Apply the batch; returns how many events were emitted to the outbox.

        Raises DeadLetterLimitReached (nothing committed) when the batch would
        exceed the dead-letter budget.
        """
        items = [self._decode(m) for m in messages]
        try:
            return self._apply(items)
        except MustPause:
            raise
        except Exception:
            if len(items) == 1:
                return self._apply_with_retries(items[0])
            log.warning("batch failed; replaying it one message per transaction",
                        extra={"consumer": self.spec.name, "size": len(items)}, exc_info=True)
            return sum(self._apply_with_retries(item) for item in items)

    def _decode(self, message: KafkaMessage) -> _Item:
        try:
            event = decode(message.value())
        except InvalidEvent as exc:
            return _Item(message, invalid=exc)
        if event.topic != message.topic():
            return _Item(message, invalid=InvalidEvent(
                f"event type {event.type} does not belong on topic {message.topic()}",
                event_type=event.type, event_id=event.event_id))
        if event.type not in self.spec.handlers:
            return _Item(message, invalid=InvalidEvent(
                f"consumer {self.spec.name} has no handler for {event.type}",
                event_type=event.type, event_id=event.event_id))
        return _Item(message, event=event)

    def _apply(self, items: Sequence[_Item]) -> int:
        outcomes: list[tuple[str, str]] = []
        applied: list[tuple[_Item, float]] = []
        invalid = sum(1 for i in items if i.invalid is not None)
        self.budget.check(invalid)
        with unit_of_work(self.alias) as uow:
            keys = {ProcessedEvent.key(self.spec.name, i.event.event_id) for i in items if i.event}
            seen = set(ProcessedEvent.objects.using(self.alias).filter(pk__in=keys).values_list("pk", flat=True))
            processed: list[ProcessedEvent] = []
            now = datetime.now(timezone.utc)
            for item in items:
                topic = item.message.topic()
                if item.invalid is not None:
                    deadletter.emit_dead_letter(uow, self.spec.name, item.message, item.invalid.reason,
                                                event_type=item.invalid.event_type, event_id=item.invalid.event_id)
                    outcomes.append((topic, "invalid"))
                    continue
                event = item.event
                assert event is not None
                key = ProcessedEvent.key(self.spec.name, event.event_id)
                if key in seen:
                    self._log_duplicate(item)
                    outcomes.append((topic, "duplicate"))
                    continue
                applied.append((item, self._handle(item, uow)))
                seen.add(key)
                processed.append(ProcessedEvent(id=key, consumer=self.spec.name, event_id=event.event_id, at=now))
                outcomes.append((topic, "ok"))
            ProcessedEvent.objects.using(self.alias).bulk_create(processed)
        self.budget.spend(invalid)
        # Counted and logged only once the transaction committed: a rolled-back
        # batch is replayed, and counted and logged then.
        for topic, outcome in outcomes:
            metrics.EVENTS_CONSUMED.labels(self.spec.name, topic, outcome).inc()
            if outcome == "invalid":
                metrics.DEAD_LETTERS.labels(self.spec.name, topic, "invalid").inc()
        for item, seconds in applied:
            self._log_applied(item, seconds)
        return len(uow.emitted)

    def _handle(self, item: _Item, uow: UnitOfWork) -> float:
        """Run the handler inside the event's log context; returns its duration in seconds."""
        event = item.event
        assert event is not None
        handler = self.spec.handlers[event.type]
        with _event_log_context(event, item.message):
            started = time.perf_counter()
            handler(event, uow)
            seconds = time.perf_counter() - started
        metrics.HANDLER_SECONDS.labels(self.spec.name, event.topic).observe(seconds)
        return seconds

    def _log_applied(self, item: _Item, seconds: float) -> None:
        assert item.event is not None
        with _event_log_context(item.event, item.message):
            log.info("event applied", extra={"consumer": self.spec.name, "durationMs": round(seconds * 1000, 2)})

    def _log_duplicate(self, item: _Item) -> None:
        assert item.event is not None
        with _event_log_context(item.event, item.message):
            log.info("duplicate event skipped", extra={"consumer": self.spec.name})

    def _apply_with_retries(self, item: _Item) -> int:
        last_error: Exception | None = None
        attempts = 0
        for attempt in range(self.retry.attempts):
            attempts += 1
            try:
                return self._apply([item])
            except PermanentHandlerError as exc:
                last_error = exc
                break
            except Exception as exc:  # retriable until the attempts run out
                last_error = exc
                metrics.EVENTS_CONSUMED.labels(self.spec.name, item.message.topic(), "retried").inc()
                with self._item_log_context(item):
                    log.warning("handler failed; will retry", exc_info=True,
                                extra={"consumer": self.spec.name, "attempt": attempt + 1})
                if attempt + 1 < self.retry.attempts:
                    self.retry.sleep(self.retry.backoff_seconds[min(attempt, len(self.retry.backoff_seconds) - 1)])
        reason = f"handler failed after {attempts} attempt(s): {type(last_error).__name__}: {last_error}"
        if item.message.topic() == topics.DEAD_LETTER:
            raise DeadLetterNotStored(reason)
        self.budget.check(1)
        with unit_of_work(self.alias) as uow:
            deadletter.emit_dead_letter(uow, self.spec.name, item.message, reason,
                                        event_type=item.event.type if item.event else None,
                                        event_id=item.event.event_id if item.event else None)
        self.budget.spend(1)
        metrics.EVENTS_CONSUMED.labels(self.spec.name, item.message.topic(), "dead_lettered").inc()
        metrics.DEAD_LETTERS.labels(self.spec.name, item.message.topic(), "handler_error").inc()
        with self._item_log_context(item):
            log.error("event dead-lettered", extra={"consumer": self.spec.name, "reason": reason})
        return len(uow.emitted)

    @staticmethod
    def _item_log_context(item: _Item) -> contextlib.AbstractContextManager[None]:
        return _event_log_context(item.event, item.message) if item.event else contextlib.nullcontext()


class ServiceConsumer:
    """The Kafka loop around a BatchProcessor: consume(n) -> process -> commit -> relay."""

    def __init__(self, spec: ConsumerSpec, stop: threading.Event, batch_size: int | None = None):
        self.spec = spec
        self.stop = stop
        self.batch_size = batch_size or settings.KAFKA_CONSUMER_BATCH
        self.processor = BatchProcessor(spec)
        self._next_broker_probe = 0.0

    def run(self) -> None:
        # A thread starts with an empty context: bind the service so every line
        # this loop (and the relay it calls) writes says whose consumer it is.
        with log_context(service=self.spec.name):
            self._run()

    def _run(self) -> None:
        consumer, watch = self._join()
        lag = LagReporter(self.spec.group_id, self.spec.name)
        log.info("consumer started", extra={"consumer": self.spec.name, "topics": self.spec.topics,
                                            "group": self.spec.group_id})
        try:
            while not self.stop.is_set():
                messages = self._next_batch(consumer)
                lag.maybe_report(consumer)
                if watch.lost.is_set():
                    consumer, watch = self._recover_if_broker_returned(consumer, watch)
                batch = [m for m in messages if self._usable(m)]
                if not batch:
                    continue
                started = time.perf_counter()
                try:
                    emitted = self.processor.process(batch)
                except MustPause as exc:
                    self._hold(consumer, batch, exc)
                    continue
                self._commit(consumer, batch)
                metrics.BATCH_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)
        finally:
            try:
                consumer.close()  # leaves the group now instead of after the session timeout
            except RuntimeError:
                pass  # already closed by a failed rejoin
            connections.close_all()
            log.info("consumer stopped", extra={"consumer": self.spec.name})

    def _join(self) -> tuple[Any, BrokerWatch]:
        # A watch per client: the errors an old client reports while closing must not flag its successor.
        watch = BrokerWatch()
        consumer = new_consumer(self.spec.group_id, watch)
        consumer.subscribe(self.spec.topics)
        return consumer, watch

    def _recover_if_broker_returned(self, consumer: Any, watch: BrokerWatch) -> tuple[Any, BrokerWatch]:
        """After every broker was unreachable: once one answers again, make sure the topics exist and rejoin.

        A broker that lost its state (the embedded in-memory one after a
        restart, or a rebuilt cluster) has no topics, no group and no committed
        offsets; the old client keeps stale metadata and membership and may
        never fetch again. A fresh client subscribes to recreated topics and
        starts from the committed offsets, or from the beginning when there
        are none; anything seen twice is skipped through processed_events.
        """
        now = time.monotonic()
        if now < self._next_broker_probe:
            return consumer, watch
        self._next_broker_probe = now + BROKER_PROBE_SECONDS
        try:
            consumer.list_topics(timeout=1.0)
        except KafkaException:
            return consumer, watch  # still down
        log.warning("broker reachable again; ensuring topics and rejoining the group",
                    extra={"consumer": self.spec.name, "group": self.spec.group_id})
        try:
            ensure_topics(timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - the missing-topic path retries later
            kafka_log.warning("could not ensure topics: %s", exc, extra={"kafka_error": str(exc)})
        try:
            consumer.close()
        except (KafkaException, RuntimeError):
            pass  # the old membership may be unknown to the broker; nothing to leave
        return self._join()

    def _commit(self, consumer: Any, batch: Sequence[KafkaMessage]) -> None:
        """Commit the batch's offsets; a failure only means redelivery, which processed_events absorbs.

        The batch's effects are already committed locally, so a broker that is
        down or a group that is rebalancing must not kill the loop: the next
        commit covers these offsets, or the messages come again and are skipped
        as duplicates.
        """
        try:
            consumer.commit(offsets=_next_offsets(batch), asynchronous=False)
        except KafkaException as exc:
            kafka_log.warning("offset commit failed; the batch may be redelivered (deduplicated): %s", exc,
                              extra={"consumer": self.spec.name, "kafka_error": str(exc)})

    def _hold(self, consumer: Any, batch: Sequence[KafkaMessage], exc: MustPause) -> None:
        """Stop consuming for a while and come back to the same messages, uncommitted.

        The group membership stays alive (consume() keeps polling while the
        partitions are paused), so the partitions are not handed to another
        worker that would dead-letter them just the same.
        """
        log.critical("consumer pausing: cannot move on safely", extra={
            "consumer": self.spec.name, "reason": str(exc), "pauseSeconds": settings.DEAD_LETTER_PAUSE_SECONDS})
        metrics.CONSUMER_PAUSED.labels(self.spec.name).set(1)
        for tp in _first_offsets(batch):
            consumer.seek(tp)
        assignment = consumer.assignment()
        consumer.pause(assignment)
        resume_at = time.monotonic() + settings.DEAD_LETTER_PAUSE_SECONDS
        while time.monotonic() < resume_at and not self.stop.is_set():
            consumer.consume(num_messages=1, timeout=0.2)
        consumer.resume(assignment)
        metrics.CONSUMER_PAUSED.labels(self.spec.name).set(0)

    def _next_batch(self, consumer: Any) -> list[Any]:
        """Wait for one message, then take whatever else is already fetched, up to the batch size.

        consume(n, timeout) waits the whole timeout for n messages to arrive (measured: one
        message, 200 ms), which would add that to every hop of the saga; poll() returns as
        soon as a message is there, and consume(n, 0) drains the local buffer without waiting.
        Under load the buffer is full and batches are large; when idle, latency stays low.
        """
        first = consumer.poll(0.2)
        if first is None:
            return []
        return [first, *consumer.consume(num_messages=self.batch_size - 1, timeout=0)]

    def _usable(self, message: Any) -> bool:
        err = message.error()
        if err is None:
            return True
        if err.code() == KafkaError._PARTITION_EOF:
            return False
        kafka_log.warning("kafka consume error: %s", err.str(), extra={"consumer": self.spec.name,
                                                                        "kafka_error": str(err)})
        if err.code() in MISSING_TOPIC_ERRORS:
            # A broker that lost its topics (in-memory broker restarted, topic deleted): recreate them.
            ensure_topics_soon()
        return False


def _first_offsets(batch: Sequence[KafkaMessage]) -> list[TopicPartition]:
    """Where to go back to per partition: the first message of the batch."""
    lowest: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic(), m.partition())
        lowest[tp] = min(lowest.get(tp, m.offset()), m.offset())
    return [TopicPartition(t, p, o) for (t, p), o in lowest.items()]


def _next_offsets(batch: Sequence[KafkaMessage]) -> list[TopicPartition]:
    """Offset to commit per partition: the last processed offset + 1."""
    highest: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic(), m.partition())
        highest[tp] = max(highest.get(tp, -1), m.offset())
    return [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]


def _event_log_context(event: Event, message: KafkaMessage) -> contextlib.AbstractContextManager[None]:
    """Every line logged while one event is handled names the event, its saga and where it came from."""
    return log_context(eventId=event.event_id, correlationId=event.correlation_id,
                       causationId=event.causation_id, orderId=event.key, eventType=event.type,
                       topic=message.topic(), partition=message.partition(), offset=message.offset())
