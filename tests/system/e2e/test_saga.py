"""The order saga on real processes: broker, Redis, daphne, celery worker and beat.

Each test uses its own SKUs for anything that moves stock, so the tests do
not depend on each other's order or stock usage.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shopsite.events import topics
from shopsite.events.registry import consumer_specs
from tests.system.e2e.conftest import SAGA_TIMEOUT, Record, System, wait_for
from tests.factories import Saga

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

HAPPY_PATH = [topics.ORDER_CREATED, topics.INVENTORY_RESERVED, topics.PAYMENT_AUTHORIZED, topics.ORDER_SHIPPED]

# Who consumes each happy-path event: the services' own declarations (each app's handlers.HANDLERS).
CONSUMERS = {
    topic: tuple(sorted(spec.name for spec in consumer_specs() if topic in spec.handlers)) for topic in HAPPY_PATH
}
# The saga's choreography (docs/architecture.md section 6) at least; the read model sees everything.
assert {"inventory", "payment", "readmodel"} <= set(CONSUMERS[topics.ORDER_CREATED])
assert {"orders", "payment", "readmodel"} <= set(CONSUMERS[topics.INVENTORY_RESERVED])
assert {"orders", "shipping", "readmodel"} <= set(CONSUMERS[topics.PAYMENT_AUTHORIZED])


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _deltas(after: dict[tuple[str, str], float], before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def _settled_total(system: System, outcome: str, before: dict, expected: float, what: str) -> dict:
    """Wait until the outcome's total delta reaches `expected`, then check it stays there for a moment."""
    wait_for(lambda: sum(_deltas(system.consumed(outcome), before).values()) >= expected, SAGA_TIMEOUT,
             what=f"{what}: {expected:g} more outcome={outcome} (now {_deltas(system.consumed(outcome), before)})")
    # No more than expected either: the counter must not keep growing (re-delivery loop, double counting).
    seen: list[dict] = []

    def stable() -> bool:
        seen.append(_deltas(system.consumed(outcome), before))
        return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

    wait_for(stable, 20, interval=0.5, what=f"outcome={outcome} counters to stop moving ({seen[-1:]})")
    return seen[-1]


# --------------------------------------------------------------------------
# 1. happy path
# --------------------------------------------------------------------------


# The one piece of the whole system also run on PostgreSQL in `make test`.
@pytest.mark.backends("sqlite", "postgres")
def test_happy_path_reaches_shipped_with_one_timeline_entry_per_step(system: System):
    stock_before = system.stock()
    assert stock_before["SKU-1"]["available"] >= 2 and stock_before["SKU-4"]["available"] >= 1

    response = system.post_order({"items": [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-4", "qty": 1}], "total": 37.5})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "CREATED" and created["orderId"] and created["correlationId"]
    order_id = created["orderId"]

    projection, order = system.wait_shipped(order_id)

    # read model: exactly the four saga steps, in order, in event time
    assert projection["orderId"] == order_id
    assert projection["currentStatus"] == "SHIPPED"
    assert [e["type"] for e in projection["timeline"]] == HAPPY_PATH
    stamps = [_instant(e["at"]) for e in projection["timeline"]]
    assert stamps == sorted(stamps), f"timeline `at` goes backwards: {[e['at'] for e in projection['timeline']]}"
    assert projection["correlationId"] == created["correlationId"]

    # order service: same status, same four events, same saga id
    assert order["status"] == "SHIPPED"
    assert [e["type"] for e in order["history"]] == HAPPY_PATH
    assert order["correlationId"] == created["correlationId"]
    assert [e["eventId"] for e in order["history"]] == [e["eventId"] for e in projection["timeline"]]
    assert order["total"] == 37.5

    # inventory: exactly the ordered quantities moved from available to reserved
    stock_after = system.stock()
    for sku, qty in (("SKU-1", 2), ("SKU-4", 1)):
        assert stock_after[sku]["available"] == stock_before[sku]["available"] - qty, (sku, stock_after[sku])
        assert stock_after[sku]["reserved"] == stock_before[sku]["reserved"] + qty, (sku, stock_after[sku])

    # payment: exactly the order's total
    payment = system.payment(order_id)
    assert payment["status"] == "AUTHORIZED"
    assert payment["amount"] == 37.5 and payment["total"] == 37.5
    authorized = projection["timeline"][2]
    assert authorized["details"]["amount"] == 37.5
    assert authorized["details"]["authId"] == payment["authId"]

    # shipping: the shipment the OrderShipped event announced
    shipment = system.shipment(order_id)
    shipped = projection["timeline"][3]["details"]
    assert (shipment["carrier"], shipment["trackingId"]) == (shipped["carrier"], shipped["trackingId"])

    # the order as of its creation: CREATED, one history entry
    as_created = system.order(order_id, at=order["createdAt"])
    assert as_created.status_code == 200, as_created.text
    past = as_created.json()
    assert past["status"] == "CREATED"
    assert [e["type"] for e in past["history"]] == [topics.ORDER_CREATED]


# --------------------------------------------------------------------------
# 2. idempotency against redelivered events
# --------------------------------------------------------------------------


def _snapshot(system: System, order_id: str) -> dict:
    return {
        "stock": system.stock(),
        "payment": system.payment(order_id),
        "shipment": system.shipment(order_id),
        "order": system.order(order_id).json(),
        "projection": system.projection(order_id).json(),
        "outbox": system.outbox_counts(),
        "processed_events": {a: system.count(a, "processed_events") for a in system.outbox_counts()},
    }


def test_redelivered_events_are_skipped_as_duplicates_and_change_nothing(system: System):
    order_id = system.place_order([{"sku": "SKU-7", "qty": 3}], 12.25)["orderId"]
    projection, _ = system.wait_shipped(order_id)
    event_ids = {e["type"]: e["eventId"] for e in projection["timeline"]}

    # This order's four events, as the services published them.
    def complete(kept: list[Record]) -> bool:
        return {r.topic for r in kept} >= set(HAPPY_PATH)

    records = system.collect(HAPPY_PATH, keep=lambda r: r.key_text == order_id, done=complete)
    by_topic = {r.topic: r for r in records}
    assert set(by_topic) == set(HAPPY_PATH)
    for topic, record in by_topic.items():
        assert json.loads(record.value)["eventId"] == event_ids[topic], topic

    system.settled_outbox()
    before = _snapshot(system, order_id)
    duplicates_before = system.consumed("duplicate")

    # Same bytes, same key, same topic: twice each.
    system.produce((r.topic, r.key, r.value, None) for r in records for _ in range(2))

    expected = {(service, topic): 2.0 for topic in HAPPY_PATH for service in CONSUMERS[topic]}
    total = sum(expected.values())  # 2 copies x every (consumer, event) pair
    deltas = _settled_total(system, "duplicate", duplicates_before, total, "redelivered events")
    assert deltas == expected

    system.settled_outbox()
    after = _snapshot(system, order_id)
    for part in ("stock", "payment", "shipment", "outbox", "processed_events"):
        assert after[part] == before[part], part
    assert after["order"] == before["order"]
    assert after["order"]["status"] == "SHIPPED" and len(after["order"]["history"]) == 4
    assert after["projection"] == before["projection"]
    assert after["projection"]["currentStatus"] == "SHIPPED" and len(after["projection"]["timeline"]) == 4


# --------------------------------------------------------------------------
# 3. bad input over HTTP
# --------------------------------------------------------------------------

VALID = {"items": [{"sku": "SKU-9", "qty": 1}], "total": 9.5}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json {", "(body)"),
        ({"items": [], "total": 5}, "items"),
        ({"items": [{"sku": "SKU-9", "qty": 0}], "total": 5}, "items.0.qty"),
        ({"items": [{"sku": "SKU-9", "qty": 1}], "total": -1}, "total"),
        ({"items": [{"sku": "SKU-9", "qty": 1}]}, "total"),
        ({**VALID, "coupon": "FREE"}, "coupon"),
        ({"items": "SKU-9", "total": 1}, "items"),
    ],
    ids=["not-json", "empty-items", "qty-0", "negative-total", "missing-total", "unknown-field", "items-not-list"],
)
def test_invalid_order_bodies_get_400_naming_the_field_and_write_nothing(system: System, body, field):
    before = (system.count("order_service", "orders"), system.count("order_service", "outbox"))
    response = (system.post_order(None, raw=body) if isinstance(body, bytes) else system.post_order(body))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert isinstance(error["error"], str) and error["error"]
    assert isinstance(error["details"], list)
    assert field in [d.get("field") for d in error["details"]], error
    assert (system.count("order_service", "orders"), system.count("order_service", "outbox")) == before


def test_unknown_order_is_404_json(system: System):
    response = system.order(f"no-such-order-{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]


def test_idempotency_key_gives_one_order_per_key(system: System):
    key = f"e2e-{uuid.uuid4()}"
    orders_before = system.count("order_service", "orders")

    first = system.post_order(VALID, headers={"Idempotency-Key": key})
    again = system.post_order(VALID, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert again.status_code in (200, 201), again.text
    assert again.json()["orderId"] == first.json()["orderId"]
    assert system.count("order_service", "orders") == orders_before + 1

    conflict = system.post_order({**VALID, "total": 10.5}, headers={"Idempotency-Key": key})
    assert conflict.status_code == 422, conflict.text
    assert conflict.json()["error"]
    assert system.count("order_service", "orders") == orders_before + 1

    # Let the one order finish its saga so later tests start from an idle system.
    system.wait_shipped(first.json()["orderId"])


# --------------------------------------------------------------------------
# 4. poison messages
# --------------------------------------------------------------------------


def _schema_invalid(mutate) -> tuple[bytes, bytes]:
    saga = Saga(items=[{"sku": "SKU-10", "qty": 1}], total=10)
    wire = saga.created().to_wire()
    mutate(wire["payload"])
    return saga.order_id.encode(), json.dumps(wire).encode()


def test_poison_messages_are_dead_lettered_and_the_partition_moves_on(system: System):
    partitions = system.partitions(topics.ORDER_CREATED)
    assert partitions >= 1
    invalid_before = system.consumed("invalid")

    poisons: list[tuple[str, bytes, bytes, str]] = []  # (kind, key, value, expected error)
    for _ in range(partitions):
        poisons.append(("garbage", f"poison-{uuid.uuid4()}".encode(), b"not json {{", "not JSON"))
        key, value = _schema_invalid(lambda p: p.update(items=[]))
        poisons.append(("empty-items", key, value, f"invalid {topics.ORDER_CREATED} payload"))
        key, value = _schema_invalid(lambda p: p["items"][0].update(qty=-1))
        poisons.append(("negative-qty", key, value, f"invalid {topics.ORDER_CREATED} payload"))
    per_partition = len(poisons) // partitions
    delivered = system.produce(
        (topics.ORDER_CREATED, key, value, index // per_partition) for index, (_, key, value, _) in enumerate(poisons)
    )
    assert sorted({r.partition for r in delivered}) == list(range(partitions))
    # Delivery reports arrive per partition, not in produce order: match them by (unique) key.
    by_key = {key: (value, error) for _, key, value, error in poisons}
    assert len(by_key) == len(poisons) == len(delivered)
    assert all(r.value == by_key[r.key][0] for r in delivered)
    expected_error = {(r.partition, r.offset): by_key[r.key][1] for r in delivered}

    # The partitions must move on past the poison: a valid order still ships.
    order_id = system.place_order([{"sku": "SKU-8", "qty": 1}], 5)["orderId"]
    system.wait_shipped(order_id)

    # Every consumer of OrderCreated counted each poison message as invalid, once.
    consumers = CONSUMERS[topics.ORDER_CREATED]
    deltas = _settled_total(system, "invalid", invalid_before, len(poisons) * len(consumers), "poison messages")
    assert deltas == {(service, topics.ORDER_CREATED): float(len(poisons)) for service in consumers}

    # ... and dead-lettered it, saying why and where it came from.
    wanted = {(consumer, where) for consumer in consumers for where in expected_error}

    def ours(record: Record) -> bool:
        payload = json.loads(record.value).get("payload", {})
        return (payload.get("sourceTopic") == topics.ORDER_CREATED
                and (payload.get("partition"), payload.get("offset")) in expected_error)

    def complete(kept: list[Record]) -> bool:
        return {(json.loads(r.value)["payload"].get("consumer"),
                 (json.loads(r.value)["payload"]["partition"], json.loads(r.value)["payload"]["offset"]))
                for r in kept} >= wanted

    letters = system.collect([topics.DEAD_LETTER], keep=ours, done=complete, timeout=SAGA_TIMEOUT)
    seen = set()
    for record in letters:
        envelope = json.loads(record.value)
        assert envelope["type"] == topics.DEAD_LETTER
        payload = envelope["payload"]
        where = (payload["partition"], payload["offset"])
        assert expected_error[where] in payload["error"], payload
        assert payload["sourceTopic"] == topics.ORDER_CREATED
        assert payload["originalType"] in ("unknown", topics.ORDER_CREATED)
        seen.add((payload["consumer"], where))
    assert seen == wanted
    assert len(letters) == len(wanted), "a poison message was dead-lettered more than once by one consumer"
    garbage = next(json.loads(r.value)["payload"] for r in letters
                   if expected_error[(json.loads(r.value)["payload"]["partition"],
                                      json.loads(r.value)["payload"]["offset"])] == "not JSON")
    assert garbage["payload"] == "not json {{"


# --------------------------------------------------------------------------
# 5. health and metrics
# --------------------------------------------------------------------------


def test_health_and_metrics(system: System):
    health = system.http.get("/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["ok"] is True
    assert body["checks"] and all(check["ok"] for check in body["checks"].values())

    metrics = system.http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(metrics.text))  # raises on anything unparsable
    for family in families:
        for sample in family.samples:
            assert isinstance(sample.value, float), sample
