"""After one order: /metrics from several processes, and JSON logs that follow the order."""

from __future__ import annotations

import pytest

from shopsite.supervisor import Stack
from tests.system.ops.support import APP_PROCESSES, WEB_PROCESSES, client, log_lines, place_order, scrape, value, wait_all_shipped, wait_for

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

SERVICES = {"orders", "inventory", "payment", "shipping", "readmodel"}


def test_metrics_after_one_order_come_from_every_process(ops_stack: Stack) -> None:
    with client(ops_stack) as http:
        # The stack is shared: an earlier test (the broker outage) may have counted failures of its own.
        failures_before = value(scrape(http), "shopsite_publish_failures_total")
        order = place_order(http, "SKU-3", qty=2, total=20)
        wait_all_shipped(ops_stack, [order["orderId"]], timeout=60)

        def settled() -> dict | None:
            # Counters after commit and the sweep's gauges land within a few seconds of SHIPPED.
            families = scrape(http)
            ready = value(families, "shopsite_saga_seconds_count", outcome="SHIPPED") >= 1 and all(
                value(families, "shopsite_outbox_backlog", service=s) == 0
                and "shopsite_outbox_backlog" in families for s in SERVICES)
            return families if ready and _has_lag(families) else None

        families = wait_for(settled, 30, "saga, outbox and lag metrics")

    for service in SERVICES:  # consumers in both worker processes
        assert value(families, "shopsite_events_consumed_total", service=service, outcome="ok") >= 1, service
        assert value(families, "shopsite_handler_seconds_count", service=service) >= 1, service
    assert value(families, "shopsite_events_published_total", service="orders",
                 topic="order.OrderCreated.v1") >= 1
    assert value(families, "shopsite_events_published_total", service="shipping") >= 1
    assert value(families, "shopsite_saga_seconds_sum", outcome="SHIPPED") > 0
    # web: the route label is the URL pattern, never the raw path with the order id in it.
    assert value(families, "shopsite_http_requests_total", method="POST", route="api/orders", status="201") >= 1
    assert value(families, "shopsite_http_request_seconds_count", route="api/orders") >= 1
    routes = {s.labels["route"] for s in families["shopsite_http_requests"].samples}
    assert not any(order["orderId"] in r for r in routes), routes
    assert value(families, "shopsite_outbox_oldest_age_seconds", service="orders") == 0
    assert value(families, "shopsite_consumer_last_poll_timestamp_seconds", service="payment") > 0
    assert value(families, "shopsite_publish_failures_total") == failures_before

    # One metrics file per process that wrote metrics: a web process and both workers.
    pids = {int(p.stem.rsplit("_", 1)[1]) for p in ops_stack.prometheus_dir.glob("*.db")}
    assert {ops_stack.pid("worker-0"), ops_stack.pid("worker-1")} <= pids
    assert {ops_stack.pid(name) for name in WEB_PROCESSES} & pids

    # Conventions: counters end in _total, durations in _seconds.
    for name, family in families.items():
        if name.startswith("shopsite_") and family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), name
        if family.type == "histogram":
            assert name.endswith("_seconds"), name


def _has_lag(families: dict) -> bool:
    """The inventory group's lag on OrderCreated is reported, and it caught up."""
    samples = [s for s in families.get("shopsite_consumer_lag_messages", type("F", (), {"samples": []})).samples
               if s.labels.get("group") == "shopsite.inventory" and s.labels.get("topic") == "order.OrderCreated.v1"]
    return bool(samples) and all(s.value == 0 for s in samples)


def test_every_line_is_json_and_one_orders_lines_share_its_correlation_id(ops_stack: Stack) -> None:
    with client(ops_stack) as http:
        order = place_order(http, "SKU-4", qty=1, total=5)
        wait_all_shipped(ops_stack, [order["orderId"]], timeout=60)
        assert http.get(f"/api/orders/{order['orderId']}").status_code == 200

    def order_lines() -> list[dict] | None:
        lines = [line for name in (*WEB_PROCESSES, "worker-0", "worker-1") for line in log_lines(ops_stack, name)
                 if line.get("orderId") == order["orderId"]]
        # The SHIPPED event reaches the order service and the read model last.
        applied = {line["service"] for line in lines if line["message"] == "event applied"}
        return lines if applied >= SERVICES else None

    mine = wait_for(order_lines, 20, "log lines of the order from every service")
    assert {line["correlationId"] for line in mine} == {order["correlationId"]}
    processes = {line["process"] for line in mine}
    assert processes >= {"worker-0", "worker-1"} and processes & set(WEB_PROCESSES), processes
    placed = [line for line in mine if line["message"] == "order placed"]
    assert len(placed) == 1 and placed[0]["service"] == "orders" and placed[0]["process"] in WEB_PROCESSES
    access = [line for line in mine if line["message"] == "request" and line["method"] == "POST"]
    assert access and access[0]["route"] == "api/orders" and access[0]["status"] == 201
    applied = [line for line in mine if line["message"] == "event applied"]
    for field in ("eventId", "causationId", "topic", "partition", "offset", "eventType"):
        assert all(field in line for line in applied if line["eventType"] != "order.OrderCreated.v1"), field
    # Ids only: no payload, items or amounts in the logs.
    assert not any({"items", "payload", "total", "amount"} & line.keys() for line in mine)

    for name in APP_PROCESSES:  # all of every file, not only this order's lines
        for line in log_lines(ops_stack, name):
            assert line["process"] == name
    beat = log_lines(ops_stack, "beat")
    assert any(line["message"] == "beat started" for line in beat)
