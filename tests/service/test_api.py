"""HTTP API of the order service and the read model (Django test client, real databases)."""

import json
from datetime import timedelta

import pytest

from orders.models import IdempotencyKey, Order
from shopsite.events import topics
from shopsite.events.models import OutboxMessage
from shopsite.ops import tokens
from shopsite.ops.roles import ensure_user
from tests.factories import Saga
from tests.service.helpers import deliver

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]

VALID = {"items": [{"sku": "SKU-1", "qty": 2}], "total": 20}


def post(client, body, **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/orders", data=data, content_type="application/json", headers=headers)


def counts():
    return Order.objects.using("order_service").count(), OutboxMessage.objects.using("order_service").count()


def test_post_creates_the_order_and_its_event_together(client):
    response = post(client, VALID)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "CREATED" and body["orderId"] and body["correlationId"]
    row = OutboxMessage.objects.using("order_service").get(key=body["orderId"])
    assert row.type == topics.ORDER_CREATED and row.payload["correlationId"] == body["correlationId"]
    assert not row.dispatched
    document = client.get(f"/api/orders/{body['orderId']}").json()
    assert document["status"] == "CREATED" and document["total"] == 20 and len(document["history"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "(body)"),
        ("", "(body)"),
        ({"items": [], "total": 5}, "items"),
        ({"items": [{"sku": "SKU-1", "qty": 0}], "total": 5}, "items.0.qty"),
        ({"items": [{"sku": "SKU-1", "qty": 1}], "total": -1}, "total"),
        ({"items": [{"sku": "SKU-1", "qty": 1}]}, "total"),
        ({"items": [{"sku": "", "qty": 1}], "total": 1}, "items.0.sku"),
        ({"items": "SKU-1", "total": 1}, "items"),
        ({**VALID, "coupon": "FREE"}, "coupon"),
        ([1, 2], "(body)"),
    ],
)
def test_invalid_bodies_get_400_with_details_and_write_nothing(client, body, field):
    before = counts()
    response = post(client, body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"] and field in [d["field"] for d in payload["details"]]
    assert counts() == before


def test_idempotency_key_returns_the_same_order(client):
    first = post(client, VALID, **{"Idempotency-Key": "k-1"})
    again = post(client, VALID, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["orderId"] == again.json()["orderId"]
    assert again["Idempotent-Replayed"] == "true"
    assert counts() == (1, 1)
    conflict = post(client, {**VALID, "total": 21}, **{"Idempotency-Key": "k-1"})
    assert conflict.status_code == 422
    assert IdempotencyKey.objects.using("order_service").count() == 1


def test_order_as_of_an_instant_is_rebuilt_from_history(client):
    order_id = post(client, VALID).json()["orderId"]
    order = Order.objects.using("order_service").get(pk=order_id)
    created = order.history[0]
    saga = Saga(order_id=order_id)
    saga.correlation_id, saga.clock = order.correlation_id, order.created_at
    from shopsite.events.envelope import decode

    saga.last = decode(json.dumps(OutboxMessage.objects.using("order_service").get(key=order_id).payload).encode())
    reserved, authorized = saga.reserved(), saga.authorized()
    deliver("orders", [reserved, authorized])

    def at(instant):
        return client.get(f"/api/orders/{order_id}", {"at": instant.isoformat()}).json()

    assert at(order.created_at)["status"] == "CREATED"
    assert at(reserved.timestamp)["status"] == "INVENTORY_RESERVED"
    assert len(at(reserved.timestamp)["history"]) == 2
    assert at(authorized.timestamp + timedelta(seconds=1))["status"] == "PAYMENT_AUTHORIZED"
    assert created["type"] == topics.ORDER_CREATED
    assert client.get(f"/api/orders/{order_id}", {"at": "yesterday"}).status_code == 400
    too_early = client.get(f"/api/orders/{order_id}", {"at": (order.created_at - timedelta(days=1)).isoformat()})
    assert too_early.status_code == 404


def test_unknown_order_is_a_json_404(client):
    response = client.get("/api/orders/nope")
    assert response.status_code == 404 and response.json()["error"]


def test_read_model_lists_newest_first_with_status_filter_and_cursor(client):
    sagas = [Saga(total=n + 1) for n in range(5)]
    for n, saga in enumerate(sagas):
        saga.clock += timedelta(minutes=n)
        events = [saga.created()] + ([saga.reserved()] if n % 2 else [])
        deliver("readmodel", events)
    ids_newest_first = [s.order_id for s in reversed(sagas)]
    page1 = client.get("/api/read/orders", {"limit": 2}).json()
    page2 = client.get("/api/read/orders", {"limit": 2, "cursor": page1["next"]}).json()
    page3 = client.get("/api/read/orders", {"limit": 2, "cursor": page2["next"]}).json()
    assert [r["orderId"] for r in page1["results"] + page2["results"] + page3["results"]] == ids_newest_first
    assert page3["next"] is None
    reserved = client.get("/api/read/orders", {"status": "INVENTORY_RESERVED"}).json()["results"]
    assert [r["orderId"] for r in reserved] == [sagas[3].order_id, sagas[1].order_id]
    assert client.get("/api/read/orders", {"status": "LOST"}).status_code == 400
    assert client.get("/api/read/orders", {"cursor": "garbage!"}).status_code == 400
    assert client.get("/api/read/orders", {"limit": 0}).status_code == 400
    detail = client.get(f"/api/read/orders/{sagas[0].order_id}").json()
    assert detail["currentStatus"] == "CREATED" and detail["timeline"][0]["type"] == topics.ORDER_CREATED
    assert client.get("/api/read/orders/unknown").status_code == 404


def test_ops_endpoints_need_an_operator_token(anonymous, viewer_user):
    assert anonymous.get("/api/ops/inventory").status_code == 401
    assert anonymous.get("/api/ops/inventory", headers={"Authorization": "Bearer forged"}).status_code == 401
    viewer = {"Authorization": f"Bearer {tokens.issue(viewer_user).plaintext}"}
    assert anonymous.get("/api/ops/inventory", headers=viewer).status_code == 403
    assert anonymous.get("/api/read/orders", headers=viewer).status_code == 200
    operator = ensure_user("operator", operator=True)[0]
    response = anonymous.get("/api/ops/inventory", headers={"Authorization": f"Bearer {tokens.issue(operator).plaintext}"})
    assert response.status_code == 200
    assert {r["sku"]: r["available"] for r in response.json()["results"]}["SKU-10"] == 1000


@pytest.fixture
def operator():
    return {"Authorization": f"Bearer {tokens.issue(ensure_user('operator', operator=True)[0]).plaintext}"}


def test_retry_and_compensate_publish_requests(client, anonymous, operator):
    order_id = post(client, VALID).json()["orderId"]

    def call(kind, body):
        return client.post(f"/api/ops/orders/{order_id}/{kind}", data=json.dumps(body),
                           content_type="application/json", headers=operator)

    accepted = call("retry", {"step": "payment"})
    assert accepted.status_code == 202
    row = OutboxMessage.objects.using("order_service").get(event_id=accepted.json()["eventId"])
    assert row.type == topics.RETRY_REQUESTED and row.payload["payload"] == {"orderId": order_id, "step": "payment"}
    assert row.payload["headers"] == {"operator": "operator"}
    # The order service sends no refund or release while shipping may be shipping the order.
    for action in ("refundPayment", "releaseInventory"):
        refused = call("compensate", {"action": action})
        assert refused.status_code == 409 and refused.json()["error"].startswith(
            ("refund refused: the order is CREATED", "release refused: a payment retry is still outstanding")
        ), refused.json()
    assert call("retry", {"step": "everything"}).status_code == 400
    assert call("compensate", {"action": "refundEverything"}).status_code == 400
    assert client.post("/api/ops/orders/nope/retry", data=json.dumps({"step": "payment"}),
                       content_type="application/json", headers=operator).status_code == 404
    assert anonymous.post(f"/api/ops/orders/{order_id}/retry", data=json.dumps({"step": "payment"}),
                          content_type="application/json").status_code == 401


def test_simulator_settings_round_trip_and_validate(client, operator):
    def put(kind, body):
        return client.put(f"/api/ops/simulators/{kind}", data=json.dumps(body), content_type="application/json",
                          headers=operator)

    assert put("payment", {"declineAbove": 50, "failureRate": 0.25}).json() == {"declineAbove": 50.0, "failureRate": 0.25}
    assert client.get("/api/ops/simulators/payment", headers=operator).json()["declineAbove"] == 50.0
    assert put("payment", {"declineAbove": None, "failureRate": 0}).json() == {"declineAbove": None, "failureRate": 0.0}
    assert put("payment", {"failureRate": 2}).status_code == 400
    assert put("shipping", {"outage": True}).json() == {"outage": True, "failureRate": 0.0}
    assert put("shipping", {"outage": "maybe"}).status_code == 400
    stock = client.put("/api/ops/inventory/SKU-3", data=json.dumps({"available": 0}), content_type="application/json",
                       headers=operator)
    assert stock.json()["available"] == 0
    assert client.put("/api/ops/inventory/SKU-3", data=json.dumps({"available": -1}),
                      content_type="application/json", headers=operator).status_code == 400


def test_dead_letter_api_lists_and_replays(client, operator):
    from tests.factories import raw_message
    from tests.service.helpers import outbox

    deliver("inventory", [raw_message(b"garbage", key="o-9")])
    deliver("readmodel", outbox("inventory", topics.DEAD_LETTER))
    listing = client.get("/api/ops/dlq", headers=operator).json()
    (letter,) = listing["results"]
    assert letter["error"].startswith("not JSON") and letter["payload"] == "garbage" and letter["orderId"] == "o-9"
    refused = client.post(f"/api/ops/dlq/{letter['id']}/replay", content_type="application/json", headers=operator)
    assert refused.status_code == 409 and "not a valid event" in refused.json()["details"][0]["message"]
    # Unreadable, the original has no type or eventId an edit could keep: nothing to correct.
    anything = Saga(order_id="o-9").created().to_wire()
    refused = client.post(f"/api/ops/dlq/{letter['id']}/replay", data=json.dumps({"event": anything}),
                          content_type="application/json", headers=operator)
    assert refused.status_code == 400 and "only the payload" in refused.json()["details"][0]["message"]

    # A readable event with a bad payload: the payload may be corrected, nothing else.
    fixed = Saga(order_id="o-10").created().to_wire()
    broken = {**fixed, "payload": {**fixed["payload"], "items": []}}
    deliver("inventory", [raw_message(json.dumps(broken).encode(), key="o-10")])
    deliver("readmodel", outbox("inventory", topics.DEAD_LETTER))
    (letter,) = [d for d in client.get("/api/ops/dlq", headers=operator).json()["results"] if d["orderId"] == "o-10"]
    replay_url = f"/api/ops/dlq/{letter['id']}/replay"
    for field, value in (("type", topics.PAYMENT_AUTHORIZED), ("key", "o-other"), ("eventId", "e-other")):
        changed = client.post(replay_url, data=json.dumps({"event": {**fixed, field: value}}),
                              content_type="application/json", headers=operator)
        assert changed.status_code == 400 and field in changed.json()["details"][0]["message"], changed.json()
    still_invalid = client.post(replay_url, data=json.dumps({"event": broken}), content_type="application/json",
                                headers=operator)
    assert still_invalid.status_code == 400 and "not a valid event" in still_invalid.json()["details"][0]["message"]
    replayed = client.post(replay_url, data=json.dumps({"event": fixed}), content_type="application/json",
                           headers=operator)
    assert replayed.status_code == 202 and replayed.json() == {"eventId": fixed["eventId"],
                                                               "topic": topics.ORDER_CREATED, "replayCount": 1}
    assert client.post("/api/ops/dlq/nope/replay", content_type="application/json", headers=operator).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"items": [{"sku": "SKU-1", "qty": ' + "9" * 5000 + '}], "total": 1}', "digits"),
        (b"{\"items\": \"\xff\"}", "utf-8"),
    ],
)
def test_hostile_json_bodies_get_400_not_500(client, operator, body, message):
    order_id = post(client, VALID).json()["orderId"]
    before = counts()
    for response in (post(client, body),
                     client.post(f"/api/ops/orders/{order_id}/retry", data=body, content_type="application/json",
                                 headers=operator)):
        assert response.status_code == 400, response.content[:200]
        payload = response.json()
        assert payload["error"] == "request body is not valid JSON"
        assert message in payload["details"][0]["message"]
    assert counts() == before


def test_a_hostile_cursor_is_a_400(client):
    import base64

    deep = base64.urlsafe_b64encode(b"[" * 50_000 + b"]" * 50_000).decode()
    assert client.get("/api/read/orders", {"cursor": deep}).status_code == 400
