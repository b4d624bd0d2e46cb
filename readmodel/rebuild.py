"""Rebuilding orders_projection by replaying every topic from the beginning.

Safe while the system runs, so it never touches the live consumer group or
the live processed_events:

1. Read every partition the read model consumes from its low watermark
   until the end it has when the replay gets there, with its own client
   (assign, never a group offset commit), so the live read model keeps
   flowing and its group is untouched.
2. Replay into a shadow database (readmodel/shadow.py) through the read
   model's own consumer path: BatchProcessor with readmodel.handlers.HANDLERS,
   i.e. the same decoding, deduplication and projection code as the live
   consumer, only aimed at another database alias.
3. Compare shadow and live: counts per status, and every order whose
   projection differs (status, timeline entries, creation time, items, total).
4. Swap (unless dry-run): per order, under the row lock the live consumer
   also takes, a live row is replaced only when every event it holds is also
   in the rebuilt row (the rebuild is at least as complete). A live row that
   holds events the replay did not include (they arrived during the
   rebuild) is left to the live consumer and reported. Live rows whose
   order the topics no longer hold (broker retention) are never deleted.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from django.conf import settings

from readmodel.handlers import HANDLERS
from readmodel.models import OrderProjection
from shopsite.events import kafka, topics
from shopsite.events.consumer import BatchProcessor, ConsumerSpec, DeadLetterBudget
from shopsite.events.unit_of_work import unit_of_work
from shopsite.services import BY_NAME

READMODEL = BY_NAME["readmodel"]
Progress = Callable[[int], None]
ReplayProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class PartitionRange:
    topic: str
    partition: int
    low: int
    high: int  # exclusive: the high watermark the broker listed when the rebuild started

    @property
    def size(self) -> int:
        return max(self.high - self.low, 0)


@dataclass
class ReplayResult:
    messages: int = 0
    ranges: list[PartitionRange] = field(default_factory=list)


@dataclass
class Comparison:
    live_orders: int
    rebuilt_orders: int
    live_by_status: dict[str, int]
    rebuilt_by_status: dict[str, int]
    differing: list[str]  # order ids present on both sides with different projections
    only_live: list[str]  # in live, not rebuilt (their events are past broker retention, or arrived later)
    only_rebuilt: list[str]  # rebuilt, missing from live

    @property
    def identical(self) -> bool:
        return not (self.differing or self.only_live or self.only_rebuilt)


@dataclass
class SwapResult:
    replaced: int = 0
    inserted: int = 0
    unchanged: int = 0
    live_ahead: list[str] = field(default_factory=list)


def readmodel_spec(alias: str) -> ConsumerSpec:
    """The read model's consumer, writing to `alias` instead of its own database."""
    return ConsumerSpec(service=dataclasses.replace(READMODEL, alias=alias), handlers=HANDLERS)


def _client() -> Consumer:
    # A group id is required by the client, never committed to (assign + no commits).
    config = kafka.consumer_config(f"{settings.KAFKA_GROUP_PREFIX}.readmodel-rebuild-{uuid.uuid4().hex[:8]}")
    config["enable.partition.eof"] = True
    return Consumer(config)


def snapshot(topic_names: Iterable[str], timeout: float = 15.0) -> list[PartitionRange]:
    """Every partition of the topics with its low and high watermark as the broker lists them.

    The high watermarks are the progress bar's total; where to stop is the
    end each partition has when the replay reaches it (read_ranges).
    """
    client = _client()
    try:
        metadata = client.list_topics(timeout=timeout)
        ranges = []
        for topic in sorted(topic_names):
            if topic not in metadata.topics:
                continue
            for partition in sorted(metadata.topics[topic].partitions):
                low, high = client.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
                ranges.append(PartitionRange(topic, partition, low, high))
        return ranges
    finally:
        client.close()


def read_ranges(ranges: list[PartitionRange], batch_size: int,
                idle_timeout: float = 60.0) -> Iterator[tuple[list[Any], int]]:
    """Every message of the partitions, from their low watermark until each one's end was reached once.

    Yields (batch, total): total is the best known number of messages to
    read, from the listed watermarks and those the fetches report (some
    Kafka-protocol brokers list stale high watermarks; a fetch's is exact).
    Messages arriving after a partition's end was reached are read too when
    they come with the rest; the live consumer handles them either way.
    """
    if not ranges:
        return
    client = _client()
    waiting = {(r.topic, r.partition) for r in ranges}
    highs = {(r.topic, r.partition): (r.low, r.high) for r in ranges}
    try:
        client.assign([TopicPartition(r.topic, r.partition, r.low) for r in ranges])
        idle_since = time.monotonic()
        while waiting:
            batch = []
            for m in client.consume(num_messages=batch_size, timeout=1.0):
                error = m.error()
                if error is None:
                    batch.append(m)
                elif error.code() == KafkaError._PARTITION_EOF:
                    waiting.discard((m.topic(), m.partition()))
                else:
                    raise RuntimeError(f"cannot read {m.topic()}[{m.partition()}]: {error.str()}")
            if batch:
                idle_since = time.monotonic()
                total = 0
                for (topic, partition), (low, high) in highs.items():
                    _, fetched_high = client.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
                    total += max(high, fetched_high) - low
                yield batch, total
            elif time.monotonic() - idle_since > idle_timeout:
                missing = ", ".join(f"{t}[{p}]" for t, p in sorted(waiting))
                raise RuntimeError(f"no end of partition reported for {idle_timeout:.0f}s: {missing}")
    finally:
        client.close()


def replay_into(alias: str, ranges: list[PartitionRange], progress: ReplayProgress, batch_size: int) -> ReplayResult:
    """Apply every message of `ranges` to `alias` with the read model's own consumer code.

    progress(n, total): n more messages applied, of `total` known so far.
    """
    # No dead-letter budget: a rebuild replays history, including every message that was dead-lettered
    # the first time; the budget exists to stop a bad deploy, not a replay of the past.
    processor = BatchProcessor(readmodel_spec(alias), budget=DeadLetterBudget(limit=sys.maxsize))
    result = ReplayResult(ranges=ranges)
    # Dead letters last: the read model puts a dead letter on its order's timeline only when the
    # order is already projected (it never invents an order from a stray key). Live, a dead letter
    # comes after the message it is about; replayed partition by partition it could come first.
    events = [r for r in ranges if r.topic != topics.DEAD_LETTER]
    letters = [r for r in ranges if r.topic == topics.DEAD_LETTER]
    done_before = 0
    for phase in (events, letters):
        phase_total = 0
        for batch, total in read_ranges(phase, batch_size):
            processor.process(batch)
            result.messages += len(batch)
            phase_total = total
            progress(len(batch), done_before + total + sum(r.size for r in letters if phase is events))
        done_before += phase_total
    return result


def comparable(row: OrderProjection) -> dict[str, Any]:
    """What a projection says, without what depends on arrival (seq numbers, updatedAt)."""
    return {
        "status": row.current_status,
        "createdAt": row.created_at,
        "correlationId": row.correlation_id,
        "items": row.items,
        "total": row.total,
        "timeline": [{k: v for k, v in entry.items() if k != "seq"} for entry in row.timeline],
    }


def _rows(alias: str, chunk: int = 1000) -> Iterator[list[OrderProjection]]:
    """All projections of `alias` in primary key order, a chunk at a time (keyset pagination)."""
    last = None
    while True:
        query = OrderProjection.objects.using(alias).order_by("order_id")
        if last is not None:
            query = query.filter(order_id__gt=last)
        rows = list(query[:chunk])
        if not rows:
            return
        yield rows
        last = rows[-1].order_id


def compare(live_alias: str, rebuilt_alias: str, progress: Progress | None = None) -> Comparison:
    live = {row.order_id: comparable(row) for rows in _rows(live_alias) for row in rows}
    rebuilt: dict[str, dict[str, Any]] = {}
    for rows in _rows(rebuilt_alias):
        rebuilt.update((row.order_id, comparable(row)) for row in rows)
        if progress:
            progress(len(rows))
    return Comparison(
        live_orders=len(live),
        rebuilt_orders=len(rebuilt),
        live_by_status=dict(Counter(p["status"] for p in live.values())),
        rebuilt_by_status=dict(Counter(p["status"] for p in rebuilt.values())),
        differing=sorted(oid for oid in live.keys() & rebuilt.keys() if live[oid] != rebuilt[oid]),
        only_live=sorted(live.keys() - rebuilt.keys()),
        only_rebuilt=sorted(rebuilt.keys() - live.keys()),
    )


def swap(live_alias: str, rebuilt_alias: str, order_ids: list[str], progress: Progress | None = None,
         chunk: int = 200) -> SwapResult:
    """Put the rebuilt projections of `order_ids` in place of the live ones (see the module docstring)."""
    result = SwapResult()
    for start in range(0, len(order_ids), chunk):
        ids = order_ids[start:start + chunk]
        rebuilt = OrderProjection.objects.using(rebuilt_alias).in_bulk(ids)
        with unit_of_work(live_alias):
            live = {row.order_id: row for row in
                    OrderProjection.objects.using(live_alias).select_for_update().filter(pk__in=ids)}
            for order_id in ids:
                new = rebuilt.get(order_id)
                if new is None:
                    continue
                old = live.get(order_id)
                if old is None:
                    new.save(using=live_alias, force_insert=True)
                    result.inserted += 1
                elif comparable(old) == comparable(new):
                    result.unchanged += 1
                elif {e["eventId"] for e in old.timeline} <= {e["eventId"] for e in new.timeline}:
                    # Keep the seq numbers live streams already handed out; number the rest after them.
                    seqs = {e["eventId"]: e.get("seq") for e in old.timeline}
                    next_seq = max((s or 0 for s in seqs.values()), default=0)
                    timeline = []
                    for entry in new.timeline:
                        seq = seqs.get(entry["eventId"])
                        if seq is None:
                            next_seq += 1
                            seq = next_seq
                        timeline.append({**entry, "seq": seq})
                    new.timeline = timeline
                    new.save(using=live_alias, force_update=True)
                    result.replaced += 1
                else:
                    result.live_ahead.append(order_id)
        if progress:
            progress(len(ids))
    return result
