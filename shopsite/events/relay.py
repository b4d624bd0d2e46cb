"""Publish a service's undispatched outbox rows, in order, and mark them sent.

A row is marked dispatched only after the broker acknowledged it. A crash
between the ack and the mark republishes the row later: a duplicate, which
consumers drop through processed_events, never a loss.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone

from confluent_kafka import KafkaError, Message
from django.db.models import F

from shopsite.events import kafka, metrics, relay_lock
from shopsite.events.models import OutboxMessage
from shopsite.services import BY_ALIAS

log = logging.getLogger(__name__)

# One relay per alias per process at a time: concurrent relays of one outbox
# would only publish the same rows twice. Across processes: relay_lock.
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
# Rounds a relay holding the cross-process claim makes for rows that others left to it;
# bounded so a consumer thread is never kept relaying for ever (the sweep backs it up).
MAX_ROUNDS = 10


def dispatch_pending(alias: str, *, batch_size: int = 500, timeout: float = 15.0) -> int:
    """Publish every pending row of `alias`; returns how many were acknowledged."""
    published = 0
    with _locks[alias]:
        for _ in range(MAX_ROUNDS):
            with relay_lock.claim(alias) as claim:
                if not claim.held:
                    break  # another process is relaying this outbox and looks again when it lets go
                count, complete = _drain(alias, batch_size, timeout)
                published += count
            if not (claim.exclusive and complete and _has_pending(alias)):
                break
    return published


def _has_pending(alias: str) -> bool:
    return OutboxMessage.objects.using(alias).filter(dispatched=False).exists()


def _drain(alias: str, batch_size: int, timeout: float) -> tuple[int, bool]:
    """Publish pending rows until none are left; (acknowledged, False if a publish failed)."""
    service = BY_ALIAS[alias].name
    published = 0
    while True:
        rows = list(
            OutboxMessage.objects.using(alias)
            .filter(dispatched=False)
            .order_by("id")
            .values("id", "topic", "key", "payload")[:batch_size]
        )
        if not rows:
            return published, True
        acked, failed = _publish(rows, timeout)
        now = datetime.now(timezone.utc)
        if acked:
            OutboxMessage.objects.using(alias).filter(id__in=list(acked)).update(dispatched=True, dispatched_at=now)
        for row_id, error in failed.items():
            OutboxMessage.objects.using(alias).filter(id=row_id).update(
                attempts=F("attempts") + 1, last_error=error[:2000]
            )
        topic_of = {r["id"]: r["topic"] for r in rows}
        for row_id in acked:
            metrics.EVENTS_PUBLISHED.labels(service, topic_of[row_id]).inc()
        for row_id in failed:
            metrics.PUBLISH_FAILURES.labels(service, topic_of[row_id]).inc()
        published += len(acked)
        if failed:
            log.warning("outbox publish failed", extra={"db": alias, "failed": len(failed),
                                                        "error": next(iter(failed.values()))[:300]})
            return published, False
        if len(rows) < batch_size:
            return published, True


def _publish(rows: list[dict], timeout: float) -> tuple[set[int], dict[int, str]]:
    producer = kafka.shared_producer()
    acked: set[int] = set()
    failed: dict[int, str] = {}
    outstanding = len(rows)
    missing_topic = threading.Event()

    def report(row_id: int):
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal outstanding
            if err is None:
                acked.add(row_id)
            else:
                failed[row_id] = str(err)
                if err.code() in kafka.MISSING_TOPIC_ERRORS:
                    missing_topic.set()
            outstanding -= 1

        return on_delivery

    deadline = time.monotonic() + timeout
    for row in rows:
        value = json.dumps(row["payload"], separators=(",", ":")).encode()
        while True:
            try:
                producer.produce(row["topic"], key=row["key"].encode(), value=value, on_delivery=report(row["id"]))
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: let deliveries drain
        producer.poll(0)
    while outstanding > 0 and time.monotonic() < deadline:
        producer.poll(0.01)
    for row in rows:
        if row["id"] not in acked and row["id"] not in failed:
            failed[row["id"]] = "no delivery report before timeout"
    if missing_topic.is_set():
        kafka.ensure_topics_soon()  # the rows stay pending; the next sweep publishes them
    return acked, failed


def backlog(alias: str) -> tuple[int, float]:
    """(undispatched rows, age in seconds of the oldest) for metrics and health."""
    pending = OutboxMessage.objects.using(alias).filter(dispatched=False)
    count = pending.count()
    oldest = pending.order_by("id").values_list("created_at", flat=True).first()
    age = (datetime.now(timezone.utc) - oldest).total_seconds() if oldest else 0.0
    return count, age
