"""The consumer runtime: Kafka batch -> validated events -> handlers -> commit.

One place owns decoding, validation, deduplication, the transaction,
offsets, metrics and errors, so handlers stay plain functions of
(event, unit of work), or, on the hot path, of (events, unit of work): a
BatchHandler applies a whole run of a batch's events with a constant number
of queries. Guarantees, in order of importance:

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
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from django.conf import settings
from django.db import connections

from shopsite.events import deadletter, lost_log, metrics, topics
from shopsite.events.envelope import Event, InvalidEvent, decode
from shopsite.events.kafka import (MISSING_TOPIC_ERRORS, BrokerWatch, ensure_topics, ensure_topics_soon, kafka_log,
                                   new_consumer)
from shopsite.events.lag import LagReporter
from shopsite.events.offsets import Offsets, on_commit_callback
from shopsite.events.readiness import ConsumerReadiness
from shopsite.events.models import ProcessedEvent
from shopsite.events.unit_of_work import UnitOfWork, unit_of_work
from shopsite.jsonlog import log_context
from shopsite.services import Service
from shopsite.transient_errors import is_transient

log = logging.getLogger(__name__)

EventHandler = Callable[[Event, UnitOfWork], None]


@dataclass(frozen=True)
class BatchHandler:
    """A handler that applies many events at once: `apply(events, uow)`.

    The runtime passes it each run of consecutive, not yet processed events
    of a batch whose types map to this same BatchHandler (so one service's
    several hot event types share one load and one write), in offset order:
    one order's events arrive in the order they were consumed. It should
    load the rows the events touch in one query, apply the events in memory
    in the given order, and write back in bulk. Raising fails the whole
    batch, which is then replayed one message per transaction.
    """

    apply: Callable[[list[Event], UnitOfWork], None]


Handler = EventHandler | BatchHandler

BROKER_PROBE_SECONDS = 1.0  # while every broker is down, how often the loop checks for one
# After the broker lost its log, partitions handed to a consumer this soon start from the beginning:
# the group may hold an offset committed for the lost log, past what the new log holds at first.
LOST_LOG_REPLAY_SECONDS = 30.0


class PermanentHandlerError(Exception):
    """Raised by a handler for an event it can never apply: dead-lettered without retries."""


class MustPause(Exception):
    """The consumer cannot safely move on: pause, then retry the same uncommitted messages.

    `done` leading messages of the batch were applied (and committed locally)
    before it was raised: the consumer commits their offsets and comes back
    to the rest, so a batch that only partly fits makes progress.
    """

    def __init__(self, reason: str, *, done: int = 0, emitted: int = 0) -> None:
        super().__init__(reason)
        self.done = done
        self.emitted = emitted

    @property
    def pause_seconds(self) -> float:
        return settings.DEAD_LETTER_PAUSE_SECONDS


class DeadLetterLimitReached(MustPause):
    """Too many dead letters too fast: more likely a bad deploy than bad messages. Stop, don't dead-letter."""


class DeadLetterNotStored(MustPause):
    """Storing a dead letter failed: dead-lettering it onto the topic it came from would loop."""


class TransientFailure(MustPause):
    """The database kept failing transiently (locked, deadlock, connection lost) through the backoff."""

    @property
    def pause_seconds(self) -> float:
        return settings.CONSUMER_TRANSIENT_PAUSE_SECONDS


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

    def remaining(self) -> int:
        now = self.clock()
        self._spent = [t for t in self._spent if now - t < self.window]
        return max(0, self.limit - len(self._spent))

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
    # Keeps a message from the dead-letter topic that is not a readable dead letter
    # (message, reason, unit of work): it cannot be dead-lettered onto its own topic.
    unreadable: Callable[[KafkaMessage, str, UnitOfWork], None] | None = None
    # The events whose handling takes the saga a step further (or shows it to its users): read in the
    # saga lane (see lanes()). A service's `handlers` module declares them as SAGA_LANE.
    saga_lane: frozenset[str] = frozenset()
    # Set on the specs lanes() returns: which lane, and how long the broker may hold its fetches.
    lane: str = ""
    fetch_wait_ms: int | None = None
    fetch_pace_ms: int | None = None

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def member_name(self) -> str:
        """This consumer among the service's consumers in one process (readiness, thread names)."""
        return f"{self.name}/{self.lane}" if self.lane else self.name

    def lanes(self) -> list[ConsumerSpec]:
        """The service's consumers, each subscribed to a part of its topics (the saga lane, the other lane).

        The embedded broker lists every record batch it holds (of all
        topics) for each partition a fetch finds new data in, so its work
        grows with each message a consumer fetches on its own, and with the
        log (measured at 100 orders/s: its CPU climbed from 30 % to 65 % of
        a core within 35 s). The saga lane reads what moves an order on with
        a short fetch wait; the other lane (bookkeeping, failures,
        compensations, operator requests, dead letters) waits longer, so the
        broker returns its messages in fewer, larger fetches. Both lanes are
        one service: the same inbox (processed_events) and handlers, in two
        consumer groups (`<prefix>.<service>` and `<prefix>.<service>.other`);
        events of one order on different topics could already arrive out of
        order, and the handlers are written for it.
        """
        saga = {t: h for t, h in self.handlers.items() if t in self.saga_lane}
        other = {t: h for t, h in self.handlers.items() if t not in self.saga_lane}
        if not other:
            return [replace(self, fetch_wait_ms=settings.KAFKA_FETCH_WAIT_MS)]
        slow = {"fetch_wait_ms": settings.KAFKA_OTHER_FETCH_WAIT_MS, "fetch_pace_ms": settings.KAFKA_OTHER_FETCH_WAIT_MS}
        if not saga:
            return [replace(self, **slow)]
        return [replace(self, handlers=saga, lane="saga", fetch_wait_ms=settings.KAFKA_FETCH_WAIT_MS),
                replace(self, handlers=other, lane="other", **slow)]

    @property
    def group_id(self) -> str:
        # The other lane is a group of its own. As a second member of the service's group (different
        # topics), a restarted worker's payment consumer got no partitions back from the embedded broker.
        lane = ".other" if self.lane == "other" else ""
        return f"{settings.KAFKA_GROUP_PREFIX}.{self.service.name}{lane}"

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
    """Retries of a failing handler (then dead-letter), and backoff on transient database errors (never dead-letter)."""

    attempts: int = 3
    backoff_seconds: Sequence[float] = (0.05, 0.25, 1.0)
    sleep: Callable[[float], None] = field(default=time.sleep)
    transient_first: float = field(default_factory=lambda: settings.CONSUMER_TRANSIENT_BACKOFF_SECONDS)
    transient_max: float = field(default_factory=lambda: settings.CONSUMER_TRANSIENT_BACKOFF_MAX_SECONDS)
    transient_total: float = field(default_factory=lambda: settings.CONSUMER_TRANSIENT_RETRY_SECONDS)

    def transient_waits(self) -> list[float]:
        """The exponential backoff: first, 2x, 4x ... capped at transient_max, until transient_total is waited."""
        waits: list[float] = []
        wait = max(self.transient_first, 0.001)
        while sum(waits) + wait <= self.transient_total + 1e-9:
            waits.append(wait)
            wait = min(wait * 2, self.transient_max)
        return waits


class BatchProcessor:
    """Applies a batch of messages to one service database. Kafka-free, so tests drive it directly."""

    def __init__(self, spec: ConsumerSpec, retry: RetryPolicy | None = None, budget: DeadLetterBudget | None = None):
        self.spec = spec
        self.alias = spec.service.alias
        self.retry = retry or RetryPolicy()
        self.budget = budget or DeadLetterBudget(settings.DEAD_LETTER_LIMIT_PER_MINUTE)

    def process(self, messages: Sequence[KafkaMessage]) -> int:
        """Apply the batch; returns how many events were emitted to the outbox.

        Raises MustPause when the consumer must stop for a while, with `done`
        saying how many leading messages were applied: DeadLetterLimitReached
        when the rest would exceed the dead-letter budget (the prefix that fits
        is applied, so a flood makes progress one budget at a time),
        TransientFailure when the database kept failing transiently.
        """
        items = [self._decode(m) for m in messages]
        fits = self._fitting_prefix(items)
        emitted = self._process(items[:fits]) if fits else 0
        if fits < len(items):
            raise DeadLetterLimitReached(
                f"{_dead_letters_wanted(items[fits:])} more dead letters would exceed the limit of "
                f"{self.budget.limit} per {self.budget.window:.0f}s", done=fits, emitted=emitted)
        return emitted

    def _fitting_prefix(self, items: Sequence[_Item]) -> int:
        """How many leading items can be applied without exceeding the dead-letter budget."""
        allowed = self.budget.remaining()
        for index, item in enumerate(items):
            wanted = _dead_letters_wanted([item])
            if wanted > allowed:
                return index
            allowed -= wanted
        return len(items)

    def _process(self, items: Sequence[_Item]) -> int:
        try:
            return self._backing_off(items, lambda: self._apply(items))
        except MustPause:
            raise
        except Exception:
            if len(items) == 1:
                return self._apply_with_retries(items[0])
            log.warning("batch failed; replaying it one message per transaction",
                        extra={"consumer": self.spec.name, "size": len(items)}, exc_info=True)
        emitted = 0
        for index, item in enumerate(items):
            try:
                emitted += self._apply_with_retries(item)
            except MustPause as exc:
                exc.done, exc.emitted = index, emitted
                raise
        return emitted

    def _backing_off(self, items: Sequence[_Item], apply: Callable[[], int]) -> int:
        """apply(), retried with exponential backoff while the database fails transiently; then TransientFailure."""
        waits = self.retry.transient_waits()
        for attempt in range(len(waits) + 1):
            try:
                return apply()
            except MustPause:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._reset_connection_if_unusable()
                topic = items[0].message.topic() if items else "unknown"
                if attempt == len(waits):
                    raise TransientFailure(f"database still failing after {sum(waits):.1f}s of retries: "
                                           f"{type(exc).__name__}: {exc}") from exc
                metrics.EVENTS_CONSUMED.labels(self.spec.name, topic, "retried").inc()
                log.warning("transient database error; backing off", extra={
                    "consumer": self.spec.name, "attempt": attempt + 1, "waitSeconds": waits[attempt],
                    "error": f"{type(exc).__name__}: {exc}"[:500]})
                self.retry.sleep(waits[attempt])
        raise AssertionError("unreachable")  # pragma: no cover

    def _reset_connection_if_unusable(self) -> None:
        """A lost connection stays broken in this long-lived thread unless closed; the next query reconnects."""
        connection = connections[self.alias]
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()

    def _decode(self, message: KafkaMessage) -> _Item:
        try:
            event = decode(message.value())
        except InvalidEvent as exc:
            return _Item(message, invalid=exc)
        except Exception as exc:  # noqa: BLE001 - decode is total; should it ever not be, one message must not stop the loop
            log.exception("decoding raised unexpectedly; dead-lettering the message", extra={"consumer": self.spec.name})
            return _Item(message, invalid=InvalidEvent(f"undecodable: {type(exc).__name__}: {exc}"[:2000]))
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
        outcomes: Counter[tuple[str, str]] = Counter()
        invalid = _dead_letters_wanted(items)
        self.budget.check(invalid)
        with unit_of_work(self.alias) as uow:
            keys = {ProcessedEvent.key(self.spec.name, i.event.event_id) for i in items if i.event}
            seen = uow.existing_pks(ProcessedEvent, keys)
            fresh: list[_Item] = []
            duplicates: list[_Item] = []
            for item in items:
                topic = item.message.topic()
                if item.invalid is not None:
                    outcomes[topic, self._reject(item, uow)] += 1
                    continue
                assert item.event is not None
                key = ProcessedEvent.key(self.spec.name, item.event.event_id)
                if key in seen:  # handled in an earlier batch, or earlier in this one
                    duplicates.append(item)
                    outcomes[topic, "duplicate"] += 1
                    continue
                seen.add(key)
                fresh.append(item)
                outcomes[topic, "ok"] += 1
            runs = self._handle(fresh, uow)
            now = datetime.now(timezone.utc)
            uow.insert_values(ProcessedEvent, [
                {"id": ProcessedEvent.key(self.spec.name, i.event.event_id), "consumer": self.spec.name,
                 "event_id": i.event.event_id, "at": now}
                for i in fresh if i.event is not None])
        self.budget.spend(invalid)
        # Counted and logged only once the transaction committed: a rolled-back
        # batch is replayed, and counted and logged then. One increment per
        # (topic, outcome), not per event.
        for (topic, outcome), count in outcomes.items():
            metrics.EVENTS_CONSUMED.labels(self.spec.name, topic, outcome).inc(count)
            if outcome == "invalid":
                metrics.DEAD_LETTERS.labels(self.spec.name, topic, "invalid").inc(count)
            elif outcome == "unreadable":
                metrics.DEAD_LETTERS.labels(self.spec.name, topic, "unreadable_dead_letter").inc(count)
        if log.isEnabledFor(logging.DEBUG):
            self._log_outcomes(runs, duplicates)
        return len(uow.emitted)

    def _reject(self, item: _Item, uow: UnitOfWork) -> str:
        """Dead-letter an invalid message; returns the outcome to count.

        Not one from the dead-letter topic: dead-lettering it onto the topic it
        came from would loop. It is logged with everything known, counted
        (dead_letters_total reason="unreadable_dead_letter") and handed to the
        spec's `unreadable` keeper (the read model stores it with the others).
        """
        assert item.invalid is not None
        if item.message.topic() == topics.DEAD_LETTER:
            raw = item.message.value() or b""
            log.error("unreadable message on the dead-letter topic (never dead-lettered onto itself)", extra={
                "consumer": self.spec.name, "topic": item.message.topic(), "partition": item.message.partition(),
                "offset": item.message.offset(), "reason": item.invalid.reason[:500],
                "value": raw[:2000].decode("utf-8", errors="replace"), "stored": self.spec.unreadable is not None})
            if self.spec.unreadable is not None:
                self.spec.unreadable(item.message, item.invalid.reason, uow)
            return "unreadable"
        deadletter.emit_dead_letter(uow, self.spec.name, item.message, item.invalid.reason,
                                    event_type=item.invalid.event_type, event_id=item.invalid.event_id)
        return "invalid"

    def _handle(self, items: Sequence[_Item], uow: UnitOfWork) -> list[tuple[list[_Item], float]]:
        """Apply the events, run by run; returns each run with its duration in seconds."""
        timed: list[tuple[list[_Item], float]] = []
        for handler, run in _runs(items, self.spec.handlers):
            started = time.perf_counter()
            if isinstance(handler, BatchHandler):
                handler.apply([i.event for i in run if i.event is not None], uow)
            else:
                (item,) = run
                assert item.event is not None
                with _event_log_context(item.event, item.message):
                    handler(item.event, uow)
            seconds = time.perf_counter() - started
            run_topics = {i.message.topic() for i in run}
            # One observation per handler call; a call that took several topics is labelled "mixed".
            topic = run_topics.pop() if len(run_topics) == 1 else "mixed"
            metrics.HANDLER_SECONDS.labels(self.spec.name, topic).observe(seconds)
            timed.append((run, seconds))
        return timed

    def _log_outcomes(self, runs: Sequence[tuple[list[_Item], float]], duplicates: Sequence[_Item]) -> None:
        """Per-event lines, at DEBUG only: at hundreds of orders a second they would cost more than the work."""
        for run, seconds in runs:
            for item in run:
                assert item.event is not None
                with _event_log_context(item.event, item.message):
                    log.debug("event applied", extra={
                        "consumer": self.spec.name, "durationMs": round(seconds * 1000, 2), "runSize": len(run)})
        for item in duplicates:
            assert item.event is not None
            with _event_log_context(item.event, item.message):
                log.debug("duplicate event skipped", extra={"consumer": self.spec.name})

    def _apply_with_retries(self, item: _Item) -> int:
        last_error: Exception | None = None
        attempts = 0
        for attempt in range(self.retry.attempts):
            attempts += 1
            try:
                return self._backing_off([item], lambda: self._apply([item]))
            except PermanentHandlerError as exc:
                last_error = exc
                break
            except MustPause:
                raise  # transient or over budget: wait, never dead-letter
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
        emitted = self._backing_off([item], lambda: self._emit_dead_letter(item, reason))
        self.budget.spend(1)
        metrics.EVENTS_CONSUMED.labels(self.spec.name, item.message.topic(), "dead_lettered").inc()
        metrics.DEAD_LETTERS.labels(self.spec.name, item.message.topic(), "handler_error").inc()
        with self._item_log_context(item):
            log.error("event dead-lettered", extra={"consumer": self.spec.name, "reason": reason})
        return emitted

    def _emit_dead_letter(self, item: _Item, reason: str) -> int:
        with unit_of_work(self.alias) as uow:
            deadletter.emit_dead_letter(uow, self.spec.name, item.message, reason,
                                        event_type=item.event.type if item.event else None,
                                        event_id=item.event.event_id if item.event else None)
        return len(uow.emitted)

    @staticmethod
    def _item_log_context(item: _Item) -> contextlib.AbstractContextManager[None]:
        return _event_log_context(item.event, item.message) if item.event else contextlib.nullcontext()


class ServiceConsumer:
    """The Kafka loop around a BatchProcessor: consume(n) -> process -> commit (the commit wakes the relay)."""

    def __init__(self, spec: ConsumerSpec, stop: threading.Event, batch_size: int | None = None):
        self.spec = spec
        self.stop = stop
        self.batch_size = batch_size or settings.KAFKA_CONSUMER_BATCH
        # Backoff waits end early on shutdown: a worker stopping mid-outage must not sit out the backoff.
        self.processor = BatchProcessor(spec, RetryPolicy(sleep=lambda seconds: stop.wait(seconds) and None))
        self._next_broker_probe = 0.0
        self._holding = False  # set while _hold pauses the consumer: see _on_assign
        self._log_epoch = lost_log.epoch()
        self._replay_until = 0.0  # see _replay_new_log
        self.offsets = Offsets(spec.name)

    def run(self) -> None:
        # A thread starts with an empty context: bind the service so every line
        # this loop (and the relay it calls) writes says whose consumer it is.
        with log_context(service=self.spec.name):
            self._run()

    def _run(self) -> None:
        consumer, watch = self._join()
        lag = LagReporter(self.spec.group_id, self.spec.name)
        ready = ConsumerReadiness(settings.KAFKA_BOOTSTRAP_SERVERS, self.spec.group_id, self.spec.member_name,
                                  settings.REDIS_URL)
        log.info("consumer started", extra={"consumer": self.spec.name, "topics": self.spec.topics,
                                            "group": self.spec.group_id})
        try:
            while not self.stop.is_set():
                messages = self._next_batch(consumer)
                lag.maybe_report(consumer)
                ready.observe(consumer)  # GET /health/ready counts consumers holding partitions
                if watch.lost.is_set():
                    self._recover_if_broker_returned(consumer, watch)
                if self._log_epoch != lost_log.epoch():
                    self._replay_new_log(consumer)
                    continue  # these messages may come from the lost log: the new one is read from its start
                batch = [m for m in messages if self._usable(m)]
                if not batch:
                    self.offsets.commit_soon(consumer, idle=True)
                    continue
                started = time.perf_counter()
                try:
                    self.processor.process(batch)
                except MustPause as exc:
                    self._commit_prefix_and_hold(consumer, batch, exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - a bug in one batch must not stop the service
                    log.exception("batch raised unexpectedly; pausing and coming back to it",
                                  extra={"consumer": self.spec.name})
                    self._hold(consumer, batch, MustPause(f"unexpected {type(exc).__name__}: {exc}"))
                    continue
                self._note(batch)
                self.offsets.commit_soon(consumer, idle=False)
                metrics.BATCH_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)
        finally:
            ready.forget()
            try:
                self.offsets.commit_now(consumer)
                consumer.close()  # leaves the group now instead of after the session timeout
            except RuntimeError:
                pass  # already closed by a failed rejoin
            connections.close_all()
            log.info("consumer stopped", extra={"consumer": self.spec.name})

    def _join(self) -> tuple[Any, BrokerWatch]:
        # A watch per client: the errors an old client reports while closing must not flag its successor.
        watch = BrokerWatch()
        consumer = new_consumer(self.spec.group_id, watch, on_commit=on_commit_callback(self.spec.name),
                                fetch_wait_ms=self.spec.fetch_wait_ms, fetch_pace_ms=self.spec.fetch_pace_ms)
        consumer.subscribe(self.spec.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_lost)
        return consumer, watch

    def _recover_if_broker_returned(self, consumer: Any, watch: BrokerWatch) -> None:
        """After every broker was unreachable: once one answers again, make sure the topics exist.

        The client rejoins its group by itself; it is kept, not replaced. A
        replaced client's close() sends a LeaveGroup for the membership it may
        just have renewed on a restarted broker, and the embedded broker then
        keeps the departed member as the group's leader: the new client's
        SyncGroup answers "rebalance in progress" for ever and the service
        gets no partitions (seen after empty restarts, every group stuck on
        its old client as leader). The client does need its metadata
        refreshed once the topics exist: one that saw them missing does not
        look for them again before topic.metadata.refresh.interval.ms (5 min).
        Whether the broker also lost its log is lost_log's watch to tell.
        """
        now = time.monotonic()
        if now < self._next_broker_probe:
            return
        self._next_broker_probe = now + BROKER_PROBE_SECONDS
        try:
            consumer.list_topics(timeout=1.0)
        except KafkaException:
            return  # still down
        log.warning("broker reachable again; ensuring topics", extra={"consumer": self.spec.name,
                                                                      "group": self.spec.group_id})
        try:
            ensure_topics(timeout=5.0)
            consumer.list_topics(timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - the next probe tries again
            kafka_log.warning("could not ensure topics: %s", exc, extra={"kafka_error": str(exc)})
            return
        self.offsets.forget()  # a broker that lost its state lost the group's offsets too: redelivered, deduplicated
        watch.lost.clear()

    def _replay_new_log(self, consumer: Any) -> None:
        """The broker lost its log: read the new one from its start, committed offsets notwithstanding.

        An offset committed for the lost log (a batch fetched before the
        broker died, committed after it came back) would make the group skip
        the first messages of the new log, which are the events published
        again. Reading them twice is harmless (processed_events).
        """
        self._log_epoch = lost_log.epoch()
        self._replay_until = time.monotonic() + LOST_LOG_REPLAY_SECONDS
        assignment = consumer.assignment()
        log.warning("the broker lost its log; reading the new one from its start", extra={
            "consumer": self.spec.name, "partitions": len(assignment)})
        self.offsets.forget()  # offsets in the lost log mean nothing in the new one
        try:
            consumer.list_topics(timeout=5.0)  # topics created again by another process: see them now
        except KafkaException:
            pass  # the broker went away again; its return is handled like any other
        self._rewind(consumer, {(tp.topic, tp.partition): OFFSET_BEGINNING for tp in assignment})

    def _note(self, batch: Sequence[KafkaMessage]) -> None:
        """The batch is applied: its offsets may be committed, unless it was fetched from a log the broker lost."""
        if self._log_epoch == lost_log.epoch():
            self.offsets.note(batch)
        # else: those offsets mean nothing in the new log, which is read again from its start

    def _commit_prefix_and_hold(self, consumer: Any, batch: Sequence[KafkaMessage], exc: MustPause) -> None:
        """Commit what was applied before the pause was called for, then hold on the rest."""
        done, rest = batch[:exc.done], batch[exc.done:]
        self._note(done)  # what the prefix emitted woke the relay when it committed
        if rest:
            self._hold(consumer, rest, exc)
        else:
            self.offsets.commit_now(consumer)

    def _hold(self, consumer: Any, batch: Sequence[KafkaMessage], exc: MustPause) -> None:
        """Stop consuming for a while and come back to the same messages, uncommitted.

        The group membership stays alive (consume() keeps polling while the
        partitions are paused), so the partitions are not handed to another
        worker that would dead-letter them just the same. The pause covers the
        whole assignment, including partitions handed to this consumer during
        the pause (_on_assign pauses them too), and anything consume() still
        returns meanwhile is not skipped: each partition is rewound to the
        lowest offset not processed before the loop goes on.
        """
        log.critical("consumer pausing: cannot move on safely", extra={
            "consumer": self.spec.name, "reason": str(exc), "pauseSeconds": exc.pause_seconds})
        self.offsets.commit_now(consumer)  # what was applied before the pause: committed, not held back
        metrics.CONSUMER_PAUSED.labels(self.spec.name).set(1)
        rewind = {(tp.topic, tp.partition): tp.offset for tp in _first_offsets(batch)}
        self._holding = True
        try:
            consumer.pause(consumer.assignment())
            resume_at = time.monotonic() + exc.pause_seconds
            while time.monotonic() < resume_at and not self.stop.is_set():
                for message in consumer.consume(num_messages=100, timeout=0.2):
                    if message.error() is None:  # fetched before its partition was paused: come back to it
                        key = (message.topic(), message.partition())
                        rewind[key] = min(rewind.get(key, message.offset()), message.offset())
            self._rewind(consumer, rewind)
        finally:
            self._holding = False
            consumer.resume(consumer.assignment())
            metrics.CONSUMER_PAUSED.labels(self.spec.name).set(0)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Partitions handed to this consumer while it holds are paused as they arrive.

        Without this, a partition first assigned during a pause is fetched and
        its messages consumed (and skipped) by the hold loop; a later commit
        would then move past them. Partitions handed to it soon after the
        broker lost its log start from the beginning (see _replay_new_log).
        """
        replay = time.monotonic() < self._replay_until
        if not (self._holding or replay) or not partitions:
            return  # the client assigns them itself after this callback, at the committed offsets
        if replay:
            partitions = [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions]
            log.info("partitions assigned soon after the broker lost its log: read from their start", extra={
                "consumer": self.spec.name, "partitions": len(partitions)})
        try:
            consumer.incremental_assign(partitions)
        except KafkaException:
            consumer.assign(partitions)  # the eager protocol: the callback's list is the whole assignment
        if not self._holding:
            return
        consumer.pause(partitions)
        log.info("partitions assigned during a pause: paused too", extra={
            "consumer": self.spec.name, "partitions": [f"{tp.topic}[{tp.partition}]" for tp in partitions]})

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Partitions going to another member: commit what was applied of them first, so it is not redone."""
        self.offsets.commit_now(consumer, partitions)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Partitions already taken away (session lost): a commit would be refused; the new owner deduplicates."""
        self.offsets.forget(partitions)

    def _rewind(self, consumer: Any, offsets: Mapping[tuple[str, int], int]) -> None:
        """Seek each partition back to its first unprocessed offset; a partition no longer ours is the new owner's."""
        for (topic, partition), offset in offsets.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as err:  # revoked meanwhile: its owner starts at the committed offset
                kafka_log.info("no rewind of a partition this consumer no longer has: %s", err,
                               extra={"consumer": self.spec.name, "topic": topic, "partition": partition})

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


def _dead_letters_wanted(items: Sequence[_Item]) -> int:
    """How many dead letters applying these items writes (unreadable dead letters are skipped, not written)."""
    return sum(1 for i in items if i.invalid is not None and i.message.topic() != topics.DEAD_LETTER)


def _runs(items: Sequence[_Item], handlers: Mapping[str, Handler]) -> Iterator[tuple[Handler, list[_Item]]]:
    """Split the batch's events, in offset order, into handler calls.

    Consecutive events whose types share one BatchHandler form one run; any
    other handler takes its events one at a time. Runs are never reordered,
    so every event sees the effects of the events before it in the batch.
    """
    run: list[_Item] = []
    current: Handler | None = None
    for item in items:
        assert item.event is not None
        handler = handlers[item.event.type]
        if run and (handler is not current or not isinstance(handler, BatchHandler)):
            yield current, run  # type: ignore[misc]
            run = []
        current = handler
        run.append(item)
    if run:
        yield current, run  # type: ignore[misc]


def event_log_context(event: Event) -> contextlib.AbstractContextManager[None]:
    """For a batch handler's lines about one of its events (the per-event handlers get this from the runtime)."""
    return log_context(eventId=event.event_id, correlationId=event.correlation_id, causationId=event.causation_id,
                       orderId=event.key, eventType=event.type)


def _first_offsets(batch: Sequence[KafkaMessage]) -> list[TopicPartition]:
    """Where to go back to per partition: the first message of the batch."""
    lowest: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic(), m.partition())
        lowest[tp] = min(lowest.get(tp, m.offset()), m.offset())
    return [TopicPartition(t, p, o) for (t, p), o in lowest.items()]


def _event_log_context(event: Event, message: KafkaMessage) -> contextlib.AbstractContextManager[None]:
    """Every line logged while one event is handled names the event, its saga and where it came from."""
    return log_context(eventId=event.event_id, correlationId=event.correlation_id,
                       causationId=event.causation_id, orderId=event.key, eventType=event.type,
                       topic=message.topic(), partition=message.partition(), offset=message.offset())
