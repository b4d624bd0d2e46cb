"""SIGTERM to a worker in the middle of a burst: it stops within seconds, is restarted, and nothing is lost or done twice."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shopsite.supervisor import Stack
from tests.system.ops.support import client, log_lines, place_order, query, statuses, stock, wait_all_shipped, wait_for

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

BURST = 100
SKU = "SKU-7"  # used by no other test, so its stock moves by this burst only
QTY = 2
VICTIM = "worker-1"  # payment, shipping, readmodel: authorisations and shipments must not double


def _per_order(stack: Stack, alias: str, event_type: str, order_ids: list[str]) -> dict[str, int]:
    marks = ",".join("?" * len(order_ids))
    rows = query(stack, alias, f"SELECT key, COUNT(*) FROM outbox WHERE type=? AND key IN ({marks}) GROUP BY key",
                 [event_type, *order_ids])
    return dict(rows)


def test_sigterm_mid_burst_stops_cleanly_and_every_order_ships_exactly_once(ops_stack: Stack) -> None:
    available_before, reserved_before = stock(ops_stack, SKU)
    order_ids: list[str] = []
    lock = threading.Lock()

    def post(_: int) -> None:
        with client(ops_stack) as http:
            order_id = place_order(http, SKU, qty=QTY, total=12.5)["orderId"]
        with lock:
            order_ids.append(order_id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        burst = [pool.submit(post, n) for n in range(BURST)]
        # Mid-burst: some orders are through payment and shipping, many are not yet.
        wait_for(lambda: sum(1 for s in statuses(ops_stack, list(order_ids)).values() if s == "SHIPPED") >= 5,
                 60, "the first orders of the burst to ship", interval=0.1)
        stopped_at = time.monotonic()
        victim = ops_stack.kill(VICTIM, signal.SIGTERM)
        death = wait_for(lambda: next((d for d in ops_stack.deaths(VICTIM) if d.pid == victim), None), 15,
                         f"{VICTIM} to exit after SIGTERM", interval=0.05)
        took = time.monotonic() - stopped_at
        # Counted now: the supervisor restarts the worker within seconds, which then finishes them.
        in_flight = len(order_ids) - list(statuses(ops_stack, list(order_ids)).values()).count("SHIPPED")
        for future in burst:
            future.result()  # every POST succeeded, also while the worker was gone

    assert death.exit_code == 0, death.description
    assert took < 10, f"{VICTIM} took {took:.1f}s to stop"
    assert in_flight > 0, "the burst was over before the SIGTERM: nothing was interrupted"
    # Its last words, as the supervisor kept them when it saw the exit.
    assert "service consumers stopped" in death.description and "worker stopped" in death.description

    # The supervisor brings it back by itself (an exit it did not ask for).
    ops_stack.wait_running(VICTIM, not_pid=victim, timeout=30)
    wait_all_shipped(ops_stack, order_ids, timeout=120)

    # No duplicate effects: stock moved by exactly the burst, one event of each kind per order.
    available, reserved = stock(ops_stack, SKU)
    assert (available_before - available, reserved - reserved_before) == (BURST * QTY, BURST * QTY)
    assert query(ops_stack, "payment_service",
                 f"SELECT COUNT(*), SUM(amount = 12.5) FROM payments WHERE status='AUTHORIZED' AND _id IN "
                 f"({','.join('?' * BURST)})", order_ids) == [(BURST, BURST)]
    assert len(query(ops_stack, "shipping_service",
                     f"SELECT _id FROM shipments WHERE status='SHIPPED' AND _id IN ({','.join('?' * BURST)})",
                     order_ids)) == BURST
    for alias, event_type in [("inventory_service", "inventory.InventoryReserved.v1"),
                              ("payment_service", "payment.PaymentAuthorized.v1"),
                              ("shipping_service", "shipping.OrderShipped.v1")]:
        counts = _per_order(ops_stack, alias, event_type, order_ids)
        assert len(counts) == BURST and set(counts.values()) == {1}, (event_type, counts)
    log_lines(ops_stack, VICTIM)  # still JSON, across the stop and the restart
