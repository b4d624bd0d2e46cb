"""Notice that the broker lost its log, and publish again what it had acknowledged.

A broker that restarts without its data (the embedded in-memory tansu, or a
cluster rebuilt from nothing) comes back with no topics, no messages, no
consumer-group offsets and no producer ids. Outbox rows it acknowledged
before are marked dispatched, and a consumer that had not read them yet
never will: without this module nothing publishes them again, and their
orders stop where they were. The outboxes still hold them, so the cure is
to mark the recently dispatched rows pending again; consumers drop what
they had already handled (processed_events), so publishing generously is
safe, and the relay publishes in outbox order, so per-key order holds.

The tell is explicit: the broker gives every topic an id when it creates it.
A worker remembers the ids of the event topics and looks again every
CHECK_SECONDS; different ids mean the topics were created again, so the log
is gone (an unreachable broker, or one restarted with its data, keeps them).
Each worker watches on its own and republishes the outboxes of the services
it runs, so every outbox is covered without any coordination between
processes; where several workers run one service (PostgreSQL) a row may go
out once more than needed, which consumers drop. The consumers of the
process learn of it through epoch() and read the new log from its start
(ServiceConsumer._replay_new_log).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import DatabaseError, connections

from shopsite.events import kafka, metrics, outbox_signal, topics
from shopsite.events.models import OutboxMessage
from shopsite.services import BY_ALIAS

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
LOOK_TIMEOUT_SECONDS = 3.0
EVENT_TOPICS: tuple[str, ...] = tuple(topics.topic_for(t) for t in topics.ALL_EVENT_TYPES)

# Topic name -> id, for the topics that exist; None while the broker does not answer.
Look = Callable[[], Mapping[str, str] | None]

_epoch = 0
_epoch_lock = threading.Lock()


def epoch() -> int:
    """How many times this process found the broker's log lost; consumers compare it with what they saw."""
    return _epoch


def _next_epoch() -> None:
    global _epoch
    with _epoch_lock:
        _epoch += 1


def republish(alias: str, since: datetime) -> int:
    """Mark the rows of `alias`'s outbox dispatched at or after `since` pending again; returns how many."""
    return (OutboxMessage.objects.using(alias)
            .filter(dispatched=True, dispatched_at__gte=since)
            .update(dispatched=False, dispatched_at=None))


class TopicIds:
    """Looks up the event topics' ids on the broker, with one admin client kept for the process's watch."""

    def __init__(self) -> None:
        self._admin: AdminClient | None = None

    def __call__(self) -> dict[str, str] | None:
        if self._admin is None:
            self._admin = AdminClient(kafka.base_config())
        self._admin.poll(0)  # serves its error callbacks, which would otherwise pile up during an outage
        futures = self._admin.describe_topics(TopicCollection(list(EVENT_TOPICS)),
                                              request_timeout=LOOK_TIMEOUT_SECONDS)
        ids: dict[str, str] = {}
        answered = False
        for name, future in futures.items():
            try:
                ids[name] = str(future.result().topic_id)
                answered = True
            except KafkaException as exc:
                if exc.args[0].code() in kafka.MISSING_TOPIC_ERRORS:
                    answered = True  # the broker answered: it has no such topic
        return ids if answered else None


class LostLogWatch:
    """One per worker process: looks at the topic ids every CHECK_SECONDS, republishes when they changed."""

    def __init__(self, aliases: Iterable[str], stop: threading.Event, look: Look | None = None,
                 interval: float = CHECK_SECONDS, window_seconds: float | None = None):
        self.aliases = list(dict.fromkeys(aliases))
        self.stop = stop
        self.look = look or TopicIds()
        self.interval = interval
        self.window = timedelta(seconds=settings.KAFKA_LOST_LOG_REPUBLISH_SECONDS
                                if window_seconds is None else window_seconds)
        self.known: dict[str, str] | None = None

    def run(self) -> None:
        try:
            while True:
                try:
                    self.check()
                except Exception:  # noqa: BLE001 - the watch must outlive a bad round; the next one looks again
                    log.warning("lost-log watch round failed; looking again", exc_info=True)
                if self.stop.wait(self.interval):
                    return
        finally:
            connections.close_all()

    def check(self) -> dict[str, int] | None:
        """One look. Returns the rows republished per service when the log was found lost, else None."""
        ids = self.look()
        if ids is None:
            return None  # the broker does not answer: nothing to compare yet
        if any(t not in ids for t in EVENT_TOPICS):
            # Recreated before anything is republished: a producer would otherwise create them itself
            # with the broker's default partition count, or fail on them.
            try:
                kafka.ensure_topics(timeout=LOOK_TIMEOUT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - the broker went away again: the next round tries again
                kafka.kafka_log.warning("could not ensure topics: %s", exc, extra={"kafka_error": str(exc)})
                return None
            ids = self.look()
            if ids is None or any(t not in ids for t in EVENT_TOPICS):
                return None
        if self.known is None:
            self.known = dict(ids)
            return None
        recreated = sorted(t for t, topic_id in ids.items() if t in self.known and self.known[t] != topic_id)
        if not recreated:
            self.known.update(ids)
            return None
        republished = self._republish()  # raises on a database error: `known` stays, the next round retries
        self.known = dict(ids)
        self._announce(recreated, republished)
        return republished

    def _republish(self) -> dict[str, int]:
        since = datetime.now(timezone.utc) - self.window
        counts: dict[str, int] = {}
        for alias in self.aliases:
            try:
                counts[BY_ALIAS[alias].name] = republish(alias, since)
            except DatabaseError:
                connections[alias].close()  # a broken connection stays broken in this long-lived thread
                raise
        return counts

    def _announce(self, recreated: list[str], republished: dict[str, int]) -> None:
        metrics.BROKER_LOG_LOST.inc()
        for service, count in republished.items():
            metrics.OUTBOX_REPUBLISHED.labels(service).inc(count)
        log.warning("the broker lost its log (its topics were created again): publishing recently dispatched "
                    "outbox rows again", extra={"topicsRecreated": len(recreated), "republished": republished,
                                                "rows": sum(republished.values()),
                                                "windowSeconds": self.window.total_seconds()})
        # The producer's id died with the broker's state: a new producer now, not after its messages time out.
        kafka.replace_shared_producer(KafkaError(KafkaError.UNKNOWN_PRODUCER_ID, "the broker lost its log"))
        _next_epoch()
        for alias in self.aliases:
            outbox_signal.announce(alias)
