"""The broker goes away and comes back: /health says so, orders placed meanwhile still ship."""

from __future__ import annotations

import time

import pytest

from shopsite.supervisor import Stack
from tests.system.ops.support import client, log_lines, place_order, wait_all_shipped, wait_for

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

KAFKA_LOGGERS = ("librdkafka", "shopsite.kafka")


def _kafka_complaints(stack: Stack) -> list[dict]:
    return [line for name in ("worker-0", "worker-1") for line in log_lines(stack, name)
            if line["logger"] in KAFKA_LOGGERS]


def _workers_reporting_all_brokers_down(stack: Stack, skip: int) -> set[str]:
    return {line["process"] for line in _kafka_complaints(stack)[skip:]
            if "_ALL_BROKERS_DOWN" in line.get("kafka_error", "")}


def test_health_names_the_broker_while_it_is_down_and_orders_placed_meanwhile_ship(ops_stack: Stack) -> None:
    with client(ops_stack) as http:
        assert http.get("/health").status_code == 200
        complaints_before = len(_kafka_complaints(ops_stack))
        ops_stack.stop_child("kafka")
        try:
            started = time.monotonic()
            response = http.get("/health")
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["failing"] == ["broker"]
            assert body["checks"]["broker"]["ok"] is False and body["checks"]["redis"]["ok"] is True
            assert elapsed < 3.5, f"/health took {elapsed:.1f}s with the broker down"

            # Accepted while the broker is down: the outbox holds the events.
            during = [place_order(http, "SKU-5", qty=1, total=7)["orderId"] for _ in range(3)]
            # Stay down until both workers' Kafka clients noticed (as JSON log lines).
            wait_for(lambda: _workers_reporting_all_brokers_down(ops_stack, complaints_before) == {"worker-0", "worker-1"},
                     30, "both workers to report the broker as unreachable")
        finally:
            ops_stack.start_child("kafka")  # the same port; the in-memory broker starts empty

        wait_for(lambda: http.get("/health").status_code == 200, 30, "/health to be 200 again")
        after = place_order(http, "SKU-5", qty=1, total=7)["orderId"]
        wait_all_shipped(ops_stack, [*during, after], timeout=90)

    assert not ops_stack.dead_children()
    # Reported without flooding the logs: repeats are throttled.
    assert len(_kafka_complaints(ops_stack)) - complaints_before < 200
