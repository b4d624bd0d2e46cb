"""Pure logic behind metrics and logs: lag arithmetic, log throttling and context, task routing."""

from __future__ import annotations

import json
import logging

import pytest

from shopsite.events import lag
from shopsite.events.tasks import route_task
from shopsite.jsonlog import JsonFormatter, RepeatThrottle, bind, log_context, request_scope
from shopsite.services import BY_NAME, served_services, task_queue

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")


def test_partition_lag_is_unknown_until_librdkafka_knows_both_offsets() -> None:
    assert lag.partition_lag(high=10, position=4) == 6
    assert lag.partition_lag(high=10, position=10) == 0
    assert lag.partition_lag(high=-1001, position=4) is None  # no fetch yet
    assert lag.partition_lag(high=0, position=-1001) == 0  # empty partition, nothing consumed
    assert lag.partition_lag(high=7, position=-1001) is None  # messages there, position not known yet
    assert lag.partition_lag(high=3, position=5) == 0  # watermark cached before the last fetch


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(message: str, name: str = "librdkafka") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)


def test_repeat_throttle_lets_one_line_through_per_interval_and_counts_the_rest() -> None:
    clock = _Clock()
    throttle = RepeatThrottle(seconds=10, clock=clock)
    assert throttle.filter(_record("Connect to 127.0.0.1:9092 failed (after 0ms)"))
    assert not throttle.filter(_record("Connect to 127.0.0.1:9092 failed (after 3ms)"))  # same but for digits
    assert throttle.filter(_record("a different failure"))
    clock.now += 10
    again = _record("Connect to 127.0.0.1:9092 failed (after 1ms)")
    assert throttle.filter(again)
    assert again.suppressedRepeats == 1


def _formatted(message: str = "hello", **extra: object) -> dict:
    record = _record(message, name="shopsite.test")
    record.__dict__.update(extra)
    return json.loads(JsonFormatter().format(record))


def test_json_lines_carry_block_context_and_request_bindings() -> None:
    assert {"ts", "level", "process", "service", "logger", "message"} <= _formatted().keys()
    with log_context(eventId="e1", correlationId="c1", service="payment"):
        line = _formatted(topic="t", partition=2, offset=7)
    assert (line["eventId"], line["correlationId"], line["service"], line["offset"]) == ("e1", "c1", "payment", 7)
    assert "eventId" not in _formatted()

    bind(orderId="ignored outside a request")
    with request_scope():
        bind(orderId="o1", correlationId="c2", service="orders")
        line = _formatted()
    assert (line["orderId"], line["correlationId"], line["service"]) == ("o1", "c2", "orders")
    assert "orderId" not in _formatted()


def test_outbox_tasks_go_to_their_services_queue() -> None:
    assert route_task("shopsite.events.tasks.sweep_outbox", ["payment_service"], {}, {}) == {
        "queue": "outbox.payment"}
    assert route_task("shopsite.events.tasks.sweep_outbox", [], {"alias": "order_service"}, {}) == {
        "queue": task_queue(BY_NAME["orders"])}
    assert route_task("celery.backend_cleanup", [], {}, {}) is None  # anything else: Celery's default queue
    assert [s.name for s in served_services("shipping")] == ["shipping"]
    assert len(served_services("")) == 5
