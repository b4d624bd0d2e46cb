"""confluent-kafka clients configured the way the guarantees need them.

Producer: idempotent, acks=all, so a retry never duplicates or reorders
within a partition. Consumer: no auto-commit (offsets are committed by the
runtime after the local transaction) and a short session timeout so a
restarted worker rejoins its group in seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings

from shopsite.events import topics

log = logging.getLogger(__name__)
# Client-level trouble (connection failures, consume errors) repeats many times
# a second during an outage; this logger is throttled in LOGGING.
kafka_log = logging.getLogger("shopsite.kafka")
# librdkafka's own log, which otherwise goes to stderr as plain text.
_librdkafka_log = logging.getLogger("librdkafka")

# Errors that mean "the topic is not there" rather than "the broker is not there".
MISSING_TOPIC_ERRORS = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                  KafkaError._UNKNOWN_PARTITION})


def _log_client_error(err: KafkaError) -> None:
    # The error in the message, not only in a field: the log throttle tells repeats apart by message.
    kafka_log.warning("kafka client error: %s", err.str(), extra={"kafka_error": str(err)})


def base_config() -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "error_cb": _log_client_error,
        "logger": _librdkafka_log,
        # A closed idle connection is normal (the broker reaps them); error_cb reports real failures.
        "log.connection.close": False,
        # Find a broker that came back within a second or two, not after the 10 s default.
        "reconnect.backoff.max.ms": 2000,
    }


def producer_config() -> dict[str, Any]:
    return {
        **base_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "compression.type": "none",
        "message.timeout.ms": 30000,
    }


def consumer_config(group_id: str) -> dict[str, Any]:
    return {
        **base_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300000,
        "fetch.wait.max.ms": 50,
        "partition.assignment.strategy": "cooperative-sticky",
    }


_producer: Producer | None = None
_producer_lock = threading.Lock()


def shared_producer() -> Producer:
    """One producer per process: librdkafka producers are thread-safe and costly to create."""
    global _producer
    with _producer_lock:
        if _producer is None:
            _producer = Producer(producer_config())
        return _producer


def close_shared_producer(timeout: float = 10.0) -> int:
    """Flush what is in flight; returns how many messages are still undelivered."""
    global _producer
    with _producer_lock:
        producer, _producer = _producer, None
    return producer.flush(timeout) if producer is not None else 0


class BrokerWatch:
    """A consumer's error_cb: logs client errors and notes when every broker was unreachable.

    The consumer loop uses it to rejoin cleanly once the broker is back
    (see ServiceConsumer._recover_if_broker_returned).
    """

    def __init__(self) -> None:
        self.lost = threading.Event()

    def __call__(self, err: KafkaError) -> None:
        _log_client_error(err)
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.lost.set()


def new_consumer(group_id: str, watch: BrokerWatch | None = None) -> Consumer:
    config = consumer_config(group_id)
    if watch is not None:
        config["error_cb"] = watch
    return Consumer(config)


_ensure_lock = threading.Lock()
_ensure_due = 0.0
ENSURE_INTERVAL_SECONDS = 10.0


def ensure_topics_soon(timeout: float = 5.0) -> None:
    """ensure_topics() at most once per interval per process, never raising.

    Called by consumers and the relay when they meet a missing topic: an
    in-memory broker that restarted has none, and a consumer subscribed to
    a topic nobody creates would wait forever.
    """
    global _ensure_due
    with _ensure_lock:
        now = time.monotonic()
        if now < _ensure_due:
            return
        _ensure_due = now + ENSURE_INTERVAL_SECONDS
    try:
        created = ensure_topics(timeout=timeout)
    except Exception as exc:  # broker still down: the next missing-topic error tries again
        kafka_log.warning("could not ensure topics: %s", exc, extra={"kafka_error": str(exc)})
        return
    if created:
        log.warning("recreated missing topics", extra={"topics": created})


def ensure_topics(timeout: float = 15.0) -> list[str]:
    """Create every event topic that does not exist yet; returns the ones created."""
    admin = AdminClient(base_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(topics.topic_for(t), settings.KAFKA_TOPIC_PARTITIONS, settings.KAFKA_TOPIC_REPLICATION)
        for t in topics.ALL_EVENT_TYPES
        if topics.topic_for(t) not in existing
    ]
    created: list[str] = []
    if not wanted:
        return created
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            # Another process may have created it between list and create.
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
