"""Publish a service's undispatched outbox rows, in order, and mark them sent.

A row is marked dispatched only after the broker acknowledged it. A crash
between the ack and the mark republishes the row later: a duplicate, which
consumers drop through processed_events, never a loss.

A row the broker can never take (too large, invalid) is parked: it keeps
dispatched=False, gets parked_at and the error, is counted in a metric and
shown in the admin, and the rows after it flow. A producer that reported a
fatal error (fenced after a broker restart) is replaced by the next
kafka.shared_producer() call; the rows it did not deliver stay pending.

The long-lived relay loop (relay_loop.py) calls drain(); beat's sweep and
tests call dispatch_pending().
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

from confluent_kafka import KafkaError, KafkaException, Message
from django.db import connections
from django.db.models import F

from shopsite.events import bulk_sql, kafka, metrics, relay_lock
from shopsite.events.models import OutboxMessage
from shopsite.events.relaxed_commit import relaxed
from shopsite.services import BY_ALIAS

log = logging.getLogger(__name__)

# One relay per alias per process at a time: concurrent relays of one outbox
# would only publish the same rows twice. Across processes: relay_lock.
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
# Rounds a relay holding the cross-process claim makes for rows that others left to it;
# bounded so a caller is never kept relaying for ever (the relay loop and the sweep back it up).
MAX_ROUNDS = 10


def pending(alias: str):  # -> QuerySet[OutboxMessage]
    """Rows still to publish: not dispatched and not parked."""
    return OutboxMessage.objects.using(alias).filter(dispatched=False, parked_at__isnull=True)


def dispatch_pending(alias: str, *, batch_size: int = 500, timeout: float | None = None) -> int:
    """Publish every pending row of `alias`; returns how many were acknowledged."""
    published = 0
    with _locks[alias]:
        for _ in range(MAX_ROUNDS):
            with relay_lock.claim(alias) as claim:
                if not claim.held:
                    break  # another process is relaying this outbox and looks again when it lets go
                count, complete = _drain(alias, batch_size, timeout)
                published += count
            if not (claim.exclusive and complete and pending(alias).exists()):
                break
    return published


def drain(alias: str, *, batch_size: int = 500, timeout: float | None = None) -> tuple[int, bool]:
    """For a relay that already holds the outbox's claim: (acknowledged, False if a publish failed)."""
    with _locks[alias]:
        return _drain(alias, batch_size, timeout)


@dataclass
class _Outcome:
    acked: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # transient: stays pending, tried again
    parked: dict[int, str] = field(default_factory=dict)  # permanent: set aside
    unsent: bool = False  # the batch was cut short (producer broken): the rest stays pending untouched


def _drain(alias: str, batch_size: int, timeout: float | None) -> tuple[int, bool]:
    """Publish pending rows until none are left; (acknowledged, False if a publish failed)."""
    service = BY_ALIAS[alias].name
    published = 0
    while True:
        rows = _pending_rows(alias, batch_size)
        if not rows:
            return published, True
        outcome = _publish(rows, timeout)
        _record(alias, service, rows, outcome)
        published += len(outcome.acked)
        if outcome.failed or outcome.unsent:
            if outcome.failed:
                log.warning("outbox publish failed", extra={"db": alias, "failed": len(outcome.failed),
                                                            "error": next(iter(outcome.failed.values()))[:300]})
            return published, False
        if len(rows) < batch_size:
            return published, True


def _pending_rows(alias: str, limit: int) -> list[dict]:
    """The next pending rows in creation order: id, topic, key and `value`, the envelope's JSON text.

    On SQL backends the stored JSON text is published as it is: decoding it
    into a dict only to encode it again cost the relay half its CPU.
    """
    if bulk_sql.supported(alias):
        with connections[alias].cursor() as cursor:
            cursor.execute(_pending_sql(alias), [False, limit])
            return [{"id": i, "topic": topic, "key": key, "value": value} for i, topic, key, value in cursor.fetchall()]
    return [{**row, "value": json.dumps(row.pop("payload"), separators=(",", ":"))}
            for row in pending(alias).order_by("id").values("id", "topic", "key", "payload")[:limit]]


@lru_cache(maxsize=16)
def _pending_sql(alias: str) -> str:
    """pending(alias).order_by("id") with the payload as its JSON text, written out once: a relay round of a
    few rows spent more on compiling its two queries than on the rows."""
    quote = connections[alias].ops.quote_name
    column = {f.name: quote(f.column) for f in OutboxMessage._meta.concrete_fields}
    return (f"SELECT {column['id']}, {column['topic']}, {column['key']}, CAST({column['payload']} AS TEXT) "
            f"FROM {quote(OutboxMessage._meta.db_table)} WHERE {column['dispatched']} = %s "
            f"AND {column['parked_at']} IS NULL ORDER BY {column['id']} LIMIT %s")


def _record(alias: str, service: str, rows: list[dict], outcome: _Outcome) -> None:
    now = datetime.now(timezone.utc)
    outbox = OutboxMessage.objects.using(alias)
    with relaxed(alias):  # a mark lost in a crash only republishes rows, which consumers drop
        if outcome.acked and bulk_sql.supported(alias):
            bulk_sql.set_fields(alias, OutboxMessage, outcome.acked, {"dispatched": True, "dispatched_at": now})
        elif outcome.acked:
            outbox.filter(id__in=outcome.acked).update(dispatched=True, dispatched_at=now)
        for row_id, error in outcome.failed.items():
            outbox.filter(id=row_id).update(attempts=F("attempts") + 1, last_error=error[:2000])
        for row_id, error in outcome.parked.items():
            outbox.filter(id=row_id).update(attempts=F("attempts") + 1, last_error=error[:2000], parked_at=now)
    topic_of = {r["id"]: r["topic"] for r in rows}
    for topic, count in Counter(topic_of[i] for i in outcome.acked).items():
        metrics.EVENTS_PUBLISHED.labels(service, topic).inc(count)
    for topic, count in Counter(topic_of[i] for i in outcome.failed).items():
        metrics.PUBLISH_FAILURES.labels(service, topic).inc(count)
    for row_id, error in outcome.parked.items():
        metrics.OUTBOX_PARKED.labels(service, topic_of[row_id]).inc()
        log.error("outbox row parked: the broker can never take it", extra={
            "db": alias, "outboxId": str(row_id), "topic": topic_of[row_id], "error": error[:300]})


def _publish(rows: list[dict], timeout: float | None) -> _Outcome:
    """Produce the rows and wait for their delivery reports.

    By default the wait lasts until librdkafka reported every message (it
    does within message.timeout.ms): a row is never produced again while an
    earlier copy may still be on its way, so an outage does not pile up copies.
    """
    producer = kafka.shared_producer()
    if timeout is None:
        timeout = kafka.DELIVERY_TIMEOUT_SECONDS + 2.0
    outcome = _Outcome()
    acked: set[int] = set()
    outstanding = 0
    missing_topic = threading.Event()

    def report(row_id: int):
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal outstanding
            if err is None:
                acked.add(row_id)
            elif kafka.is_permanent(err):
                outcome.parked[row_id] = str(err)
            else:
                outcome.failed[row_id] = str(err)
                kafka.report_producer_error(producer, err)
                if err.code() in kafka.MISSING_TOPIC_ERRORS:
                    missing_topic.set()
            outstanding -= 1

        return on_delivery

    deadline = time.monotonic() + timeout
    produced: list[int] = []
    for row in rows:
        try:
            _produce(producer, row, report(row["id"]))
        except KafkaException as exc:
            err = exc.args[0]
            if kafka.is_permanent(err):
                outcome.parked[row["id"]] = str(err)
                continue
            kafka.report_producer_error(producer, err)
            outcome.unsent = True  # broken producer: leave this row and the rest for its successor
            break
        outstanding += 1
        produced.append(row["id"])
    while outstanding > 0 and time.monotonic() < deadline and not kafka.producer_broken(producer):
        producer.poll(min(0.05, max(0.0, deadline - time.monotonic())))
    producer.poll(0)
    # Keep creation order in what is marked: rows answered later than the wait are "failed", still pending.
    stalled = False
    for row_id in produced:
        if row_id in acked:
            outcome.acked.append(row_id)
        elif row_id not in outcome.failed and row_id not in outcome.parked:
            outcome.failed[row_id] = "no delivery report before timeout"
            stalled = True
        elif "_MSG_TIMED_OUT" in outcome.failed.get(row_id, ""):
            stalled = True
    if stalled:
        kafka.report_producer_stalled(producer)
    if missing_topic.is_set():
        kafka.ensure_topics_soon()  # the rows stay pending; the next round publishes them
    return outcome


def _produce(producer, row: dict, on_delivery) -> None:  # noqa: ANN001 - confluent types
    while True:
        try:
            producer.produce(row["topic"], key=row["key"], value=row["value"], on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)  # local queue full: let deliveries drain


def backlog(alias: str) -> tuple[int, float]:
    """(pending rows, age in seconds of the oldest) for metrics and health; parked rows are not backlog."""
    rows = pending(alias)
    count = rows.count()
    oldest = rows.order_by("id").values_list("created_at", flat=True).first()
    age = (datetime.now(timezone.utc) - oldest).total_seconds() if oldest else 0.0
    return count, age
