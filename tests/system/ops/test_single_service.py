"""One service deployed alone: its own web port, consumers and database, and nothing of the others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shopsite.supervisor import Stack, StackConfig
from tests.system.ops.conftest import run_stack
from tests.system.ops.support import ROOT, artifacts, client, log_lines, place_order, scrape, value, wait_for

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]


@pytest.fixture(scope="module")
def orders_alone() -> Iterator[Stack]:
    base = artifacts("orders-alone")
    yield from run_stack(StackConfig(base_dir=ROOT, var_dir=base / "var", log_dir=base / "logs", port=0,
                                     force_embedded_redis=True, service="orders"))


def test_the_order_service_alone_serves_its_endpoints_and_not_the_others(orders_alone: Stack) -> None:
    assert orders_alone.names() == ["kafka", "redis", *orders_alone.web_names, "worker-0", "beat"]
    assert "--services=orders" in orders_alone.argv("worker-0")

    with client(orders_alone) as http:
        health = http.get("/health")
        assert health.status_code == 200, health.text
        assert set(health.json()["checks"]) == {"db:default", "db:order_service", "broker", "redis"}

        order = place_order(http, "SKU-1", qty=1, total=3)
        detail = http.get(f"/api/orders/{order['orderId']}")
        assert detail.status_code == 200 and detail.json()["status"] == "CREATED"

        # The other services' endpoints are not routed here at all (404, not 401 or 405).
        for path in [f"/api/read/orders/{order['orderId']}", "/api/read/orders", "/api/ops/inventory",
                     f"/api/ops/payments/{order['orderId']}", f"/api/ops/shipments/{order['orderId']}",
                     "/api/ops/dlq", "/", "/admin/"]:
            assert http.get(path).status_code == 404, path

        # Its own worker's relay loop (woken over Redis by the web process) published the event.
        families = wait_for(lambda: (f := scrape(http)) and value(
            f, "shopsite_events_published_total", service="orders", topic="order.OrderCreated.v1") >= 1 and f,
            30, "the order service to publish OrderCreated")
        assert value(families, "shopsite_outbox_backlog", service="orders") == 0 or \
            "shopsite_outbox_backlog" not in families
        assert value(families, "shopsite_events_published_total", service="inventory") == 0

    # Its logs name the service, whichever process wrote them.
    lines = [line for name in (*orders_alone.web_names, "worker-0", "beat") for line in log_lines(orders_alone, name)]
    assert {line["service"] for line in lines} == {"orders"}
    beat = [line for line in lines if line["message"] == "beat started"]
    assert beat and beat[0]["schedule"] == ["purge-retention-orders", "sweep-outbox-orders"]
