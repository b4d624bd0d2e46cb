"""Prometheus metrics, module-level, few labels (bounded: service, topic, outcome).

In multi-process mode (PROMETHEUS_MULTIPROC_DIR set by the launcher) every
daphne and celery process writes its own files and /metrics sums them.
Counters and histograms of a process that exited stay in the sum (totals
never go backwards). Gauges say how to combine processes: `mostrecent` for
a value any process may set (the last writer is right), `live*` for a value
only meaningful while its process lives (files removed by mark_dead).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client import REGISTRY as _DEFAULT_REGISTRY

EVENTS_CONSUMED = Counter(
    "shopsite_events_consumed_total",
    "Kafka messages taken by a service consumer, by outcome "
    "(ok, duplicate, invalid, dead_lettered, retried, failed).",
    ["service", "topic", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "shopsite_handler_seconds",
    "Time spent in one event handler (inside the unit of work).",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_SECONDS = Histogram(
    "shopsite_consumer_batch_seconds",
    "Time to process one consumed batch, transaction and offset commit included.",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_PUBLISHED = Counter(
    "shopsite_events_published_total", "Outbox rows acknowledged by the broker.", ["service", "topic"]
)
PUBLISH_FAILURES = Counter(
    "shopsite_publish_failures_total", "Outbox rows the broker did not acknowledge.", ["service", "topic"]
)
OUTBOX_PARKED = Counter(
    "shopsite_outbox_parked_total",
    "Outbox rows set aside because the broker can never take them (e.g. too large); see the admin.",
    ["service", "topic"],
)
PRODUCERS_REPLACED = Counter(
    "shopsite_kafka_producers_replaced_total", "Kafka producers replaced after a fatal error (e.g. fenced)."
)
BROKER_LOG_LOST = Counter(
    "shopsite_kafka_log_lost_total",
    "Times a worker found the event topics created again (the broker lost its log, e.g. restarted empty) "
    "and published its recently dispatched outbox rows again.",
)
OUTBOX_REPUBLISHED = Counter(
    "shopsite_outbox_republished_total",
    "Dispatched outbox rows marked pending again because the broker lost its log.",
    ["service"],
)
ILLEGAL_TRANSITIONS = Counter(
    "shopsite_illegal_transitions_total",
    "Events recorded in history that the order state machine did not apply.",
    ["service", "type"],
)
CONSUMER_PAUSED = Gauge(
    "shopsite_consumer_paused", "1 while a consumer is paused because it hit the dead-letter limit.", ["service"],
    multiprocess_mode="livemax",  # a worker that died paused must not report "paused" forever
)
DEAD_LETTERS = Counter(
    "shopsite_dead_letters_total",
    "Messages a consumer turned into ops.DeadLetter.v1, by source topic and reason "
    "(invalid: can never be handled; handler_error: failed after its retries; "
    "unreadable_dead_letter: an unreadable message on the dead-letter topic, logged and skipped).",
    ["service", "topic", "reason"],
)
CONSUMER_LAG = Gauge(
    "shopsite_consumer_lag_messages",
    "Messages on a partition not yet consumed by the group (high watermark - position), "
    "refreshed by the consumer loop every few seconds.",
    ["group", "topic", "partition"],
    multiprocess_mode="mostrecent",  # after a rebalance the new owner's value is the newer one
)
CONSUMER_LAST_POLL = Gauge(
    "shopsite_consumer_last_poll_timestamp_seconds",
    "Unix time a consumer loop last polled Kafka; a stale value means a stuck or dead consumer.",
    ["service"],
    multiprocess_mode="mostrecent",
)
OUTBOX_BACKLOG = Gauge(
    "shopsite_outbox_backlog", "Undispatched outbox rows at the last sweep.", ["service"],
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_AGE = Gauge(
    "shopsite_outbox_oldest_age_seconds", "Age of the oldest undispatched outbox row at the last sweep.",
    ["service"], multiprocess_mode="mostrecent",
)
SAGA_SECONDS = Histogram(
    "shopsite_saga_seconds",
    "From OrderCreated to the order's terminal status (outcome = that status), in event time.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
PURGED_ROWS = Counter(
    "shopsite_purged_rows_total",
    "Rows deleted by retention: dispatched outbox rows and processed_events past their age (table label).",
    ["service", "table"],
)


def mark_dead(pid: int) -> None:
    """Drop a finished process's live gauges (multi-process mode only)."""
    if _multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


# Written by the process supervisor (shopsite/supervisor/restarts.py), which is not a
# Django process: its restart counters, as Prometheus text, beside the children's files.
SUPERVISOR_METRICS_FILE = "supervisor.prom"


def exposition() -> bytes:
    """The text exposition: all processes' metrics (and the supervisor's) in multi-process mode, else this process's."""
    directory = _multiprocess_dir()
    if directory is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry) + _supervisor_metrics(Path(directory))
    return generate_latest(_DEFAULT_REGISTRY)


def _multiprocess_dir() -> Path | None:
    from django.conf import settings  # only called in a Django process (worker shutdown, /metrics)

    return settings.PROMETHEUS_MULTIPROC_DIR


def _supervisor_metrics(directory: Path) -> bytes:
    try:
        return (directory / SUPERVISOR_METRICS_FILE).read_bytes()
    except FileNotFoundError:
        return b""  # not started by the supervisor
