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
from collections.abc import Callable
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


DELIVERY_TIMEOUT_SECONDS = 10.0


def producer_config() -> dict[str, Any]:
    return {
        **base_config(),
        "enable.idempotence": True,
        "acks": "all",
        # A relay round produces its rows in one go; waiting longer for more only delays every hop of the saga.
        "linger.ms": 1,
        "compression.type": "none",
        # A message not acknowledged within this fails (its row stays pending and is sent again);
        # the relay waits this long at most, so copies of a row never pile up in the producer.
        "message.timeout.ms": int(DELIVERY_TIMEOUT_SECONDS * 1000),
    }


def consumer_config(group_id: str, fetch_wait_ms: int | None = None, fetch_pace_ms: int | None = None) -> dict[str, Any]:
    config = {
        **base_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300000,
        # How long the broker holds a fetch that finds nothing new. The embedded broker looks again at
        # shrinking intervals within it (half, then half of the rest...), so a message reaches a waiting fetch
        # after about a quarter of it (measured alone: produce -> consumed p50 2.6 ms at 10, 6.6 at 40, 22 at
        # 100). Every fetch that finds data costs it a listing of all the record batches it holds, so the
        # lanes that no saga step waits for also pace their fetches (fetch_pace_ms, ConsumerSpec.lanes).
        "fetch.wait.max.ms": fetch_wait_ms or settings.KAFKA_FETCH_WAIT_MS,
        "partition.assignment.strategy": "cooperative-sticky",
    }
    if fetch_pace_ms:
        # At most one fetch per partition per fetch_pace_ms while messages keep coming: librdkafka backs a
        # partition off for fetch.queue.backoff.ms once its local queue holds queued.min.messages.
        config.update({"queued.min.messages": 1, "fetch.queue.backoff.ms": fetch_pace_ms})
    return config


# Errors after which an idempotent producer can send nothing more (librdkafka raises
# a fatal error; a broker that lost its state answers PRODUCER_FENCED or forgets
# the producer id). The only cure is a new producer (a new producer id).
FATAL_PRODUCER_ERRORS = frozenset({KafkaError._FATAL, KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                   KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.UNKNOWN_PRODUCER_ID,
                                   KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
                                   KafkaError.INVALID_PRODUCER_ID_MAPPING, KafkaError._GAPLESS_GUARANTEE})
# Errors a message will get however often it is sent (too large, rejected as invalid).
PERMANENT_MESSAGE_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD,
                                      KafkaError.RECORD_LIST_TOO_LARGE, KafkaError._INVALID_ARG,
                                      KafkaError.INVALID_MSG})


def is_fatal(err: KafkaError) -> bool:
    return err.fatal() or err.code() in FATAL_PRODUCER_ERRORS


def is_permanent(err: KafkaError) -> bool:
    return not is_fatal(err) and err.code() in PERMANENT_MESSAGE_ERRORS


class _SharedProducer:
    """The process's producer, and whether it reported a fatal error (then the next user gets a new one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.producer: Producer | None = None
        self.broken: KafkaError | None = None
        self.generation = 0

    def watch(self, generation: int):
        def on_error(err: KafkaError) -> None:
            _log_client_error(err)
            if is_fatal(err):
                self.report_fatal(generation, err)

        return on_error

    def report_fatal(self, generation: int, err: KafkaError) -> None:
        # Only the producer that failed is condemned: a late error of a replaced one must not condemn its successor.
        with self.lock:
            if generation == self.generation and self.broken is None:
                self.broken = err


_shared = _SharedProducer()


def shared_producer() -> Producer:
    """One producer per process (librdkafka producers are thread-safe and costly to create).

    A producer that reported a fatal error is replaced here: its undelivered
    messages fail, so their outbox rows stay pending and the new producer sends them.
    """
    from shopsite.events import metrics

    with _shared.lock:
        old, broken = _shared.producer, _shared.broken
        if old is None or broken is not None:
            _shared.generation += 1
            _shared.broken = None
            _shared.producer = Producer({**producer_config(), "error_cb": _shared.watch(_shared.generation)})
        producer = _shared.producer
    if broken is not None:
        log.warning("replaced the Kafka producer after a fatal error", extra={"kafka_error": str(broken)})
        metrics.PRODUCERS_REPLACED.inc()
        _discard(old)
    return producer


def warm_producer(timeout: float = 5.0) -> None:
    """Create the shared producer and connect it now, so the first outbox row does not pay for it."""
    try:
        shared_producer().list_topics(timeout=timeout)
    except KafkaException as exc:  # the broker is not there yet: the relay connects when it is
        kafka_log.warning("could not warm the producer: %s", exc, extra={"kafka_error": str(exc)})


def producer_generation(producer: Producer) -> int | None:
    """The generation of `producer` if it is still the shared one (for report_producer_error)."""
    with _shared.lock:
        return _shared.generation if _shared.producer is producer else None


def report_producer_error(producer: Producer, err: KafkaError) -> None:
    """A delivery report or produce() said `err`; a fatal one condemns this producer."""
    if is_fatal(err):
        generation = producer_generation(producer)
        if generation is not None:
            _shared.report_fatal(generation, err)


def report_producer_stalled(producer: Producer) -> None:
    """Messages got no delivery report in time. If the broker answers, the producer itself is wedged: condemn it.

    Seen with a broker restarted empty: the idempotent producer's id is
    unknown to it, and librdkafka bumps its epoch and retries for ever
    ("Unknown Producer Id", DrainBump -> Assigned) without a fatal error;
    its messages only time out. A new producer gets a new id. While the broker
    is unreachable a new producer would not help, so the old one is kept.
    """
    generation = producer_generation(producer)
    if generation is None:
        return
    try:
        producer.list_topics(timeout=2.0)
    except KafkaException:
        return
    _shared.report_fatal(generation, KafkaError(KafkaError._TIMED_OUT,
                                                "no delivery reports although the broker answers"))


def replace_shared_producer(err: KafkaError) -> None:
    """Condemn the process's producer for `err`, known from elsewhere: the next shared_producer() is a new one."""
    with _shared.lock:
        generation = _shared.generation if _shared.producer is not None else None
    if generation is not None:
        _shared.report_fatal(generation, err)


def producer_broken(producer: Producer) -> bool:
    with _shared.lock:
        return _shared.producer is producer and _shared.broken is not None


def _discard(producer: Producer | None) -> None:
    if producer is None:
        return
    try:
        producer.purge()  # what it still holds fails now; those rows stay pending in the outbox
        producer.flush(0)
    except Exception:  # noqa: BLE001 - a broken client may refuse even this; it is dropped anyway
        kafka_log.warning("could not purge a discarded producer", exc_info=True)


def close_shared_producer(timeout: float = 10.0) -> int:
    """Flush what is in flight; returns how many messages are still undelivered."""
    with _shared.lock:
        producer, _shared.producer, _shared.broken = _shared.producer, None, None
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


def new_consumer(group_id: str, watch: BrokerWatch | None = None,
                 on_commit: Callable[[KafkaError | None, list[Any]], None] | None = None,
                 fetch_wait_ms: int | None = None, fetch_pace_ms: int | None = None) -> Consumer:
    config = consumer_config(group_id, fetch_wait_ms, fetch_pace_ms)
    if watch is not None:
        config["error_cb"] = watch
    if on_commit is not None:
        config["on_commit"] = on_commit  # asynchronous commits report here, from poll()
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
