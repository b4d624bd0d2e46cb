"""Failure paths on real processes: failed steps, operator retries and compensations, the DLQ, ops auth.

Every test that moves stock uses its own SKUs (SKU-3; SKU-5; SKU-9 and
SKU-10; SKU-2; SKU-6), waits for the last event it caused and leaves the
simulators as a fresh system has them (no decline limit, no outage, no
failure rate) even when it fails, so the tests in this session do not
depend on each other or on test_saga.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shopsite.events import topics
from shopsite.events.envelope import new_event
from tests.system.e2e.conftest import SAGA_TIMEOUT, System, wait_for

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

Entries = list[dict[str, Any]]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _ops(system: System, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
         ) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": system.ops_headers if headers is None else headers}
    if body is not None:
        kwargs["content"] = json.dumps(body).encode()
        kwargs["headers"] = {**kwargs["headers"], "Content-Type": "application/json"}
    # Given headers are all the credentials the request carries.
    return (system.http if headers is None else system.anonymous).request(method, path, **kwargs)


def _put(system: System, path: str, body: Any) -> dict[str, Any]:
    response = _ops(system, "PUT", path, body)
    assert response.status_code == 200, f"PUT {path} -> {response.status_code} {response.text}"
    return response.json()


def _request(system: System, order_id: str, kind: str, value: str) -> str:
    """POST a retry (kind 'retry', value = step) or compensation (kind 'compensate', value = action): its eventId."""
    field = "step" if kind == "retry" else "action"
    response = _ops(system, "POST", f"/api/ops/orders/{order_id}/{kind}", {field: value})
    assert response.status_code == 202, f"{kind} {value} -> {response.status_code} {response.text}"
    answer = response.json()
    assert answer["eventId"], answer
    return answer["eventId"]


def _reset_simulators(system: System) -> None:
    _put(system, "/api/ops/simulators/payment", {"declineAbove": None, "failureRate": 0})
    _put(system, "/api/ops/simulators/shipping", {"outage": False, "failureRate": 0})


def _types(entries: Entries) -> list[str]:
    return [e["type"] for e in entries]


def _count(entries: Entries, event_type: str) -> int:
    return sum(1 for e in entries if e["type"] == event_type)


def _only(entries: Entries, event_type: str) -> dict[str, Any]:
    found = [e for e in entries if e["type"] == event_type]
    assert len(found) == 1, f"expected exactly one {event_type}, got {len(found)}: {_types(entries)}"
    return found[0]


def _wait_state(system: System, order_id: str, status: str, until: Callable[[Entries], bool] = lambda _: True,
                timeout: float = SAGA_TIMEOUT) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait until the read model (currentStatus, timeline) and the order service (status, history) both
    show `status` and `until(entries)` holds for each; returns (projection, order)."""

    def projected() -> dict[str, Any] | None:
        response = system.projection(order_id)
        if response.status_code != 200:
            return None
        doc = response.json()
        return doc if doc["currentStatus"] == status and until(doc["timeline"]) else None

    def ordered() -> dict[str, Any] | None:
        response = system.order(order_id)
        if response.status_code != 200:
            return None
        doc = response.json()
        return doc if doc["status"] == status and until(doc["history"]) else None

    def last(response: httpx.Response) -> str:
        if response.status_code != 200:
            return f"{response.status_code} {response.text[:300]}"
        doc = response.json()
        entries = doc.get("timeline", doc.get("history", []))
        return f"{doc.get('currentStatus', doc.get('status'))} {_types(entries)}"

    try:
        projection = wait_for(projected, timeout, what=f"read model of {order_id} to reach {status}")
        order = wait_for(ordered, timeout, what=f"order {order_id} to reach {status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n  read model now: {last(system.projection(order_id))}"
                             f"\n  order service now: {last(system.order(order_id))}") from None
    return projection, order


def _has(event_type: str, n: int = 1, **details: Any) -> Callable[[Entries], bool]:
    """At least n entries of this type whose details contain `details`."""

    def check(entries: Entries) -> bool:
        return sum(1 for e in entries if e["type"] == event_type
                   and all(e["details"].get(k) == v for k, v in details.items())) >= n

    return check


def _deltas(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def _stock_of(system: System, *skus: str) -> dict[str, tuple[int, int]]:
    rows = system.stock()
    return {sku: (rows[sku]["available"], rows[sku]["reserved"]) for sku in skus}


@pytest.fixture(autouse=True)
def _simulators_restored(system: System):
    """Whatever a test does or however it fails: the next test starts with well-behaved simulators."""
    yield
    _reset_simulators(system)


# --------------------------------------------------------------------------
# 1. out of stock -> INVENTORY_FAILED -> restock -> retry inventory -> SHIPPED
# --------------------------------------------------------------------------


def test_out_of_stock_fails_inventory_and_a_retry_after_restock_ships(system: System):
    sku, qty, total = "SKU-3", 4, 26.4
    _, reserved_before = _stock_of(system, sku)[sku]
    assert _put(system, f"/api/ops/inventory/{sku}", {"available": 0})["available"] == 0

    order_id = system.place_order([{"sku": sku, "qty": qty}], total)["orderId"]
    projection, order = _wait_state(system, order_id, "INVENTORY_FAILED", _has(topics.INVENTORY_FAILED))
    failed = _only(projection["timeline"], topics.INVENTORY_FAILED)
    assert sku in failed["details"]["reason"], failed
    assert _only(order["history"], topics.INVENTORY_FAILED)["details"]["reason"] == failed["details"]["reason"]
    reservation = system.ops_get(f"/api/ops/reservations/{order_id}").json()
    assert reservation["status"] == "FAILED" and sku in reservation["reason"], reservation
    # nothing was taken, nothing was charged
    assert _stock_of(system, sku)[sku] == (0, reserved_before)
    assert system.payment(order_id)["status"] != "AUTHORIZED"

    restocked = _put(system, f"/api/ops/inventory/{sku}", {"available": 50})
    assert (restocked["available"], restocked["reserved"]) == (50, reserved_before)
    retry_id = _request(system, order_id, "retry", "inventory")

    projection, order = _wait_state(system, order_id, "SHIPPED", _has(topics.ORDER_SHIPPED))
    for entries in (projection["timeline"], order["history"]):
        assert _types(entries) == [topics.ORDER_CREATED, topics.INVENTORY_FAILED, topics.RETRY_REQUESTED,
                                   topics.INVENTORY_RESERVED, topics.PAYMENT_AUTHORIZED, topics.ORDER_SHIPPED]
        assert _only(entries, topics.RETRY_REQUESTED)["eventId"] == retry_id
        assert _only(entries, topics.INVENTORY_RESERVED)["details"]["reservedItems"] == [{"sku": sku, "qty": qty}]

    # stock conserved: exactly the ordered units moved from available to reserved
    available, reserved = _stock_of(system, sku)[sku]
    assert (available, reserved) == (50 - qty, reserved_before + qty)
    assert available + reserved == 50 + reserved_before
    payment = system.payment(order_id)
    assert payment["status"] == "AUTHORIZED" and payment["amount"] == total


# --------------------------------------------------------------------------
# 2. payment declined -> PAYMENT_FAILED -> limit cleared -> retry payment -> SHIPPED, charged once
# --------------------------------------------------------------------------


def test_declined_payment_fails_and_a_retry_after_clearing_the_limit_charges_once(system: System):
    total = 64.2
    try:
        sim = _put(system, "/api/ops/simulators/payment", {"declineAbove": 50, "failureRate": 0})
        assert sim == {"declineAbove": 50.0, "failureRate": 0.0}

        order_id = system.place_order([{"sku": "SKU-5", "qty": 2}], total)["orderId"]
        projection, _ = _wait_state(system, order_id, "PAYMENT_FAILED", _has(topics.PAYMENT_FAILED))
        reason = _only(projection["timeline"], topics.PAYMENT_FAILED)["details"]["reason"]
        assert "declined" in reason and "50" in reason, reason
        assert system.payment(order_id)["status"] == "FAILED"
        assert system.ops_get(f"/api/ops/shipments/{order_id}").status_code == 404  # never attempted

        assert _put(system, "/api/ops/simulators/payment", {"declineAbove": None, "failureRate": 0})[
            "declineAbove"] is None
    finally:
        _reset_simulators(system)

    retry_id = _request(system, order_id, "retry", "payment")
    projection, order = _wait_state(system, order_id, "SHIPPED", _has(topics.ORDER_SHIPPED))
    payment = system.payment(order_id)
    assert payment["status"] == "AUTHORIZED"
    assert payment["amount"] == total and payment["total"] == total
    for entries in (projection["timeline"], order["history"]):
        assert _types(entries) == [topics.ORDER_CREATED, topics.INVENTORY_RESERVED, topics.PAYMENT_FAILED,
                                   topics.RETRY_REQUESTED, topics.PAYMENT_AUTHORIZED, topics.ORDER_SHIPPED]
        authorized = _only(entries, topics.PAYMENT_AUTHORIZED)
        assert _only(entries, topics.RETRY_REQUESTED)["eventId"] == retry_id
        assert authorized["details"]["amount"] == total
        assert authorized["details"]["authId"] == payment["authId"]
        assert _count(entries, topics.REQUEST_REFUSED) == 0
    assert system.shipment(order_id)["status"] == "SHIPPED"


# --------------------------------------------------------------------------
# 3. carrier outage -> SHIPPING_FAILED -> refund (once) -> release stock (exactly)
# --------------------------------------------------------------------------


def test_shipping_outage_then_refund_once_and_release_exactly_the_reserved_stock(system: System):
    items = [{"sku": "SKU-9", "qty": 2}, {"sku": "SKU-10", "qty": 1}]
    total = 42.8
    before = _stock_of(system, "SKU-9", "SKU-10")
    try:
        assert _put(system, "/api/ops/simulators/shipping", {"outage": True, "failureRate": 0})["outage"] is True
        order_id = system.place_order(items, total)["orderId"]
        projection, _ = _wait_state(system, order_id, "SHIPPING_FAILED", _has(topics.SHIPPING_FAILED))
    finally:
        _reset_simulators(system)  # the outage is over as soon as the failure is seen
    assert "outage" in _only(projection["timeline"], topics.SHIPPING_FAILED)["details"]["reason"]
    assert system.shipment(order_id)["status"] == "FAILED"
    reserved = _stock_of(system, "SKU-9", "SKU-10")
    for item in items:
        sku, qty = item["sku"], item["qty"]
        assert reserved[sku] == (before[sku][0] - qty, before[sku][1] + qty), (sku, reserved[sku], before[sku])
    authorized = system.payment(order_id)
    assert authorized["status"] == "AUTHORIZED" and authorized["amount"] == total

    # refund: exactly what was authorised
    refund_id = _request(system, order_id, "compensate", "refundPayment")
    projection, order = _wait_state(system, order_id, "REFUNDED", _has(topics.PAYMENT_REFUNDED))
    refunded = _only(projection["timeline"], topics.PAYMENT_REFUNDED)
    assert _only(projection["timeline"], topics.COMPENSATION_REQUESTED)["eventId"] == refund_id
    assert refunded["details"]["amount"] == total
    payment = system.payment(order_id)
    assert payment["status"] == "REFUNDED"
    assert payment["refundedAmount"] == total == payment["amount"]
    assert payment["refundId"] == refunded["details"]["refundId"]
    assert payment["authId"] == authorized["authId"]
    # a refunded order never ships later
    assert system.shipment(order_id)["status"] == "CANCELLED"

    # a second refund is refused, visibly, and changes nothing
    again_id = _request(system, order_id, "compensate", "refundPayment")
    projection, order = _wait_state(system, order_id, "REFUNDED",
                                    _has(topics.REQUEST_REFUSED, requestEventId=again_id))
    for entries in (projection["timeline"], order["history"]):
        refused = _only(entries, topics.REQUEST_REFUSED)
        assert refused["details"]["action"] == "refundPayment"
        assert "already refunded" in refused["details"]["reason"], refused
        assert _count(entries, topics.PAYMENT_REFUNDED) == 1
        assert _count(entries, topics.COMPENSATION_REQUESTED) == 2
    assert system.payment(order_id) == payment

    # release: exactly the reserved units go back
    release_id = _request(system, order_id, "compensate", "releaseInventory")
    projection, order = _wait_state(system, order_id, "REFUNDED", _has(topics.INVENTORY_RELEASED))
    for entries in (projection["timeline"], order["history"]):
        released = _only(entries, topics.INVENTORY_RELEASED)
        requests = [e["eventId"] for e in entries if e["type"] == topics.COMPENSATION_REQUESTED]
        assert requests == [refund_id, again_id, release_id]
        assert released["details"]["releasedItems"] == items
        assert _count(entries, topics.PAYMENT_REFUNDED) == 1
    assert system.ops_get(f"/api/ops/reservations/{order_id}").json()["status"] == "RELEASED"
    assert _stock_of(system, "SKU-9", "SKU-10") == before


# --------------------------------------------------------------------------
# 4. retrying a step that succeeded: acknowledged as nothing to retry, nothing re-driven
# --------------------------------------------------------------------------


def test_retrying_payment_of_a_shipped_order_changes_nothing_downstream(system: System):
    order_id = system.place_order([{"sku": "SKU-2", "qty": 1}], 11)["orderId"]
    _wait_state(system, order_id, "SHIPPED", _has(topics.ORDER_SHIPPED))
    system.settled_outbox()
    payment_before, shipment_before = system.payment(order_id), system.shipment(order_id)

    retry_id = _request(system, order_id, "retry", "payment")
    projection, order = _wait_state(system, order_id, "SHIPPED", _has(topics.REQUEST_REFUSED, requestEventId=retry_id))
    system.settled_outbox()
    projection, order = system.projection(order_id).json(), system.order(order_id).json()
    for entries in (projection["timeline"], order["history"]):
        refused = _only(entries, topics.REQUEST_REFUSED)
        assert refused["details"]["step"] == "payment"
        assert "nothing to retry" in refused["details"]["reason"], refused
        assert _count(entries, topics.PAYMENT_AUTHORIZED) == 1
        assert _count(entries, topics.ORDER_SHIPPED) == 1
        assert _types(entries) == [topics.ORDER_CREATED, topics.INVENTORY_RESERVED, topics.PAYMENT_AUTHORIZED,
                                   topics.ORDER_SHIPPED, topics.RETRY_REQUESTED, topics.REQUEST_REFUSED]
    assert projection["currentStatus"] == order["status"] == "SHIPPED"
    payment_after, shipment_after = system.payment(order_id), system.shipment(order_id)
    assert payment_after["authId"] == payment_before["authId"]
    assert payment_after == payment_before
    assert shipment_after["trackingId"] == shipment_before["trackingId"]
    assert shipment_after == shipment_before


# --------------------------------------------------------------------------
# 5. poison messages in the DLQ, the partition moving on, replay (corrected, refused, limited)
# --------------------------------------------------------------------------

DLQ_CONSUMERS = {"inventory", "payment", "readmodel"}  # who consumes OrderCreated
REPLAY_SKU, REPLAY_QTY, REPLAY_TOTAL = "SKU-2", 3, 7.5


def _dlq(system: System) -> dict[str, dict[str, Any]]:
    response = system.ops_get("/api/ops/dlq?limit=500")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] <= 500, "more dead letters than one page: this test needs the whole list"
    return {row["id"]: row for row in body["results"]}


def _replay(system: System, letter_id: str, event: dict[str, Any] | None = None) -> httpx.Response:
    return _ops(system, "POST", f"/api/ops/dlq/{letter_id}/replay", None if event is None else {"event": event})


def _processed_count(system: System, event_id: str) -> dict[str, int]:
    return {alias: int(system.query(alias, "SELECT COUNT(*) FROM processed_events WHERE eventId = ?",
                                    (event_id,))[0][0])
            for alias in ("inventory_service", "payment_service", "read_model_service", "order_service",
                          "shipping_service")}


def test_poison_messages_reach_the_dlq_and_a_corrected_replay_is_processed_once(system: System):
    partitions = system.partitions(topics.ORDER_CREATED)
    records: list[tuple[str, bytes, bytes, int]] = []
    invalid: dict[bytes, dict[str, Any]] = {}  # key -> the schema-invalid envelope sent under it
    for partition in range(partitions):
        records.append((topics.ORDER_CREATED, f"garbage-{uuid.uuid4()}".encode(), b"garbage {{ not json", partition))
        ghost = f"ghost-{uuid.uuid4()}"  # an orderId no service knows
        wire = new_event(topics.ORDER_CREATED,
                         {"orderId": ghost, "items": [{"sku": REPLAY_SKU, "qty": REPLAY_QTY}], "total": REPLAY_TOTAL},
                         correlation_id=str(uuid.uuid4())).to_wire()
        wire["payload"]["items"] = []  # schema-invalid: an order needs at least one line
        invalid[ghost.encode()] = wire
        records.append((topics.ORDER_CREATED, ghost.encode(), json.dumps(wire).encode(), partition))
    delivered = system.produce(records)
    assert sorted({r.partition for r in delivered}) == list(range(partitions))

    # The partitions move on: a valid order placed right after still ships.
    order_id = system.place_order([{"sku": "SKU-6", "qty": 1}], 6)["orderId"]
    system.wait_shipped(order_id)

    # Every poison message is one DLQ entry, with every consumer's reason.
    letter_ids = {f"{r.topic}:{r.partition}:{r.offset}": r for r in delivered}

    def all_stored() -> dict[str, dict[str, Any]] | None:
        rows = _dlq(system)
        ours = {i: rows.get(i) for i in letter_ids}
        done = all(row and {e["consumer"] for e in row["errors"]} >= DLQ_CONSUMERS for row in ours.values())
        return ours if done else None

    letters = wait_for(all_stored, SAGA_TIMEOUT, interval=0.5, what="every poison message in GET /api/ops/dlq")
    for letter_id, row in letters.items():
        record = letter_ids[letter_id]
        assert (row["sourceTopic"], row["partition"], row["offset"]) == (record.topic, record.partition, record.offset)
        assert row["status"] == "PENDING" and row["replayCount"] == 0, row
        assert len(row["errors"]) == len(DLQ_CONSUMERS), row["errors"]
        if record.key in invalid:
            wire = invalid[record.key]
            expected = f"invalid {topics.ORDER_CREATED} payload"
            assert row["originalType"] == topics.ORDER_CREATED
            assert row["originalEventId"] == wire["eventId"]
            assert row["orderId"] == wire["key"]
            assert row["payload"] == wire
        else:
            expected = "not JSON"
            assert row["originalType"] == "unknown"
            assert row["payload"] == "garbage {{ not json"
        assert expected in row["error"], row
        assert all(expected in e["error"] for e in row["errors"]), row["errors"]

    garbage_id = next(i for i, r in letter_ids.items() if r.key not in invalid)
    invalid_id = next(i for i, r in letter_ids.items() if r.key in invalid)
    original = invalid[letter_ids[invalid_id].key]
    ghost = original["key"]

    # Replays that cannot work are refused and do not count.
    refused = _replay(system, garbage_id)
    assert refused.status_code == 409, refused.text
    assert "not a valid event" in refused.text
    refused = _replay(system, invalid_id)
    assert refused.status_code == 409, refused.text
    assert "not a valid event" in refused.text
    rows = _dlq(system)
    assert rows[garbage_id]["replayCount"] == rows[invalid_id]["replayCount"] == 0
    assert rows[garbage_id]["status"] == rows[invalid_id]["status"] == "PENDING"

    # Replay with a corrected event: same eventId and key, the payload fixed.
    corrected = json.loads(json.dumps(original))
    corrected["payload"]["items"] = [{"sku": REPLAY_SKU, "qty": REPLAY_QTY}]
    stock_before = _stock_of(system, REPLAY_SKU)[REPLAY_SKU]
    duplicates_before = system.consumed("duplicate")
    replayed = _replay(system, invalid_id, corrected)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json() == {"eventId": original["eventId"], "topic": topics.ORDER_CREATED, "replayCount": 1}

    # What the system does with an OrderCreated the order service never made: the read model, inventory,
    # payment and shipping run the saga for it; the order service has no such order, so its consumer
    # dead-letters each downstream event ("no order ...").
    def ghost_shipped() -> dict[str, Any] | None:
        response = system.projection(ghost)
        doc = response.json() if response.status_code == 200 else None
        shipped = doc is not None and doc["currentStatus"] == "SHIPPED" and _has(topics.ORDER_SHIPPED)(doc["timeline"])
        return doc if shipped else None

    projection = wait_for(ghost_shipped, SAGA_TIMEOUT, what=f"read model of the replayed order {ghost} to ship")
    assert _only(projection["timeline"], topics.ORDER_CREATED)["eventId"] == original["eventId"]
    assert projection["total"] == REPLAY_TOTAL
    assert projection["items"] == [{"sku": REPLAY_SKU, "qty": REPLAY_QTY}]
    assert system.order(ghost).status_code == 404
    # Inventory marks a reservation SHIPPED once it sees OrderShipped (shipped stock can't be released).
    reservation = wait_for(lambda: (r := system.ops_get(f"/api/ops/reservations/{ghost}").json())["status"] == "SHIPPED"
                           and r, what="the reservation to follow the shipment")
    assert reservation["items"] == [{"sku": REPLAY_SKU, "qty": REPLAY_QTY}]
    payment = system.payment(ghost)
    assert payment["status"] == "AUTHORIZED" and payment["amount"] == payment["total"] == REPLAY_TOTAL
    assert system.shipment(ghost)["status"] == "SHIPPED"

    downstream = {topics.INVENTORY_RESERVED, topics.PAYMENT_AUTHORIZED, topics.ORDER_SHIPPED}

    def orders_dead_letters() -> list[dict[str, Any]] | None:
        found = [row for row in _dlq(system).values() if row["orderId"] == ghost and row["id"] != invalid_id]
        return found if {row["originalType"] for row in found} >= downstream else None

    ghost_letters = wait_for(orders_dead_letters, SAGA_TIMEOUT, interval=0.5,
                             what=f"the order service to dead-letter the downstream events of {ghost}")
    assert sorted(row["originalType"] for row in ghost_letters) == sorted(downstream)
    for row in ghost_letters:
        assert [e["consumer"] for e in row["errors"]] == ["orders"], row["errors"]
        assert "no order" in row["error"], row

    # Two more replays of the same correction (the limit is 3): every consumer skips them by eventId.
    for count in (2, 3):
        again = _replay(system, invalid_id, corrected)
        assert again.status_code == 202, again.text
        assert again.json()["replayCount"] == count
    fourth = _replay(system, invalid_id, corrected)
    assert fourth.status_code == 409, fourth.text
    assert "limit 3" in fourth.text
    row = _dlq(system)[invalid_id]
    assert row["status"] == "REPLAYED" and row["replayCount"] == 3

    expected = {(consumer, topics.ORDER_CREATED): 2.0 for consumer in DLQ_CONSUMERS}
    wait_for(lambda: _deltas(system.consumed("duplicate"), duplicates_before) == expected, SAGA_TIMEOUT,
             interval=0.5, what=f"each OrderCreated consumer to skip the two extra replays as duplicates "
                                f"(now {_deltas(system.consumed('duplicate'), duplicates_before)})")
    system.settled_outbox()
    assert _deltas(system.consumed("duplicate"), duplicates_before) == expected

    # Processed exactly once by each consumer of OrderCreated, and its effects happened once.
    assert _processed_count(system, original["eventId"]) == {
        "inventory_service": 1, "payment_service": 1, "read_model_service": 1, "order_service": 0,
        "shipping_service": 0}
    projection = system.projection(ghost).json()
    assert _count(projection["timeline"], topics.ORDER_CREATED) == 1
    for event_type in downstream:
        assert _count(projection["timeline"], event_type) == 1, _types(projection["timeline"])
    available, reserved = _stock_of(system, REPLAY_SKU)[REPLAY_SKU]
    assert (available, reserved) == (stock_before[0] - REPLAY_QTY, stock_before[1] + REPLAY_QTY)
    assert system.payment(ghost) == payment


# --------------------------------------------------------------------------
# 6. the operator API: authentication, authorisation, validation
# --------------------------------------------------------------------------


def test_ops_endpoints_need_a_staff_token_and_validate_requests(system: System, viewer_token: str):
    order_id = system.place_order([{"sku": "SKU-6", "qty": 1}], 3)["orderId"]
    _wait_state(system, order_id, "SHIPPED", _has(topics.ORDER_SHIPPED))
    system.settled_outbox()
    outbox_before = system.count("order_service", "outbox")
    stock_before = _stock_of(system, "SKU-6")

    probes = [
        ("GET", "/api/ops/inventory", None),
        ("PUT", "/api/ops/inventory/SKU-6", {"available": 1}),
        ("GET", "/api/ops/dlq", None),
        ("GET", f"/api/ops/payments/{order_id}", None),
        ("PUT", "/api/ops/simulators/shipping", {"outage": True, "failureRate": 0}),
        ("POST", f"/api/ops/orders/{order_id}/retry", {"step": "payment"}),
        ("POST", f"/api/ops/orders/{order_id}/compensate", {"action": "refundPayment"}),
    ]
    for method, path, body in probes:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
            response = _ops(system, method, path, body, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.status_code, response.text)
            assert response.json()["error"]
        forbidden = _ops(system, method, path, body, headers={"Authorization": f"Bearer {viewer_token}"})
        assert forbidden.status_code == 403, (method, path, forbidden.status_code, forbidden.text)
        assert forbidden.json()["error"]
    # none of the refused requests did anything
    assert system.count("order_service", "outbox") == outbox_before
    assert _stock_of(system, "SKU-6") == stock_before
    assert _ops(system, "GET", "/api/ops/simulators/shipping").json()["outage"] is False

    # unknown order: 404; unknown step or action: 400 naming the field; neither emits anything
    for kind, body in (("retry", {"step": "payment"}), ("compensate", {"action": "refundPayment"})):
        response = _ops(system, "POST", f"/api/ops/orders/no-such-{uuid.uuid4()}/{kind}", body)
        assert response.status_code == 404, response.text
        assert response.json()["error"]
    for kind, body, field in (("retry", {"step": "billing"}, "step"), ("compensate", {"action": "cancel"}, "action"),
                              ("retry", {}, "step"), ("compensate", {"action": "refundPayment", "x": 1}, "x")):
        response = _ops(system, "POST", f"/api/ops/orders/{order_id}/{kind}", body)
        assert response.status_code == 400, (kind, body, response.text)
        assert field in [d.get("field") for d in response.json()["details"]], response.json()
    assert system.count("order_service", "outbox") == outbox_before

    # a staff token: 202, and the owning service answers (here: nothing to retry)
    retry_id = _request(system, order_id, "retry", "shipping")
    projection, order = _wait_state(system, order_id, "SHIPPED", _has(topics.REQUEST_REFUSED, requestEventId=retry_id))
    refused = _only(projection["timeline"], topics.REQUEST_REFUSED)
    assert refused["details"]["reason"] == "nothing to retry: shipping is SHIPPED", refused
    assert _count(order["history"], topics.ORDER_SHIPPED) == 1
    system.settled_outbox()
