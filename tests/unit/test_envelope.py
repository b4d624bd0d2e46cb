import json
from decimal import Decimal

import pytest

from shopsite.events import topics
from shopsite.events.envelope import InvalidEvent, decode, new_event
from tests.factories import Saga, wire

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")


def test_round_trip_keeps_every_envelope_field():
    event = Saga(total=19.99).created()
    back = decode(event.to_bytes())
    assert back == event
    data = json.loads(event.to_bytes())
    assert set(data) == {"eventId", "type", "version", "timestamp", "correlationId", "causationId", "key", "payload"}
    assert data["version"] == 1 and data["key"] == event.payload.orderId
    assert data["payload"]["total"] == 19.99  # a JSON number on the wire, as in the seed
    assert back.payload.total == Decimal("19.99")  # exact inside the system


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json {{", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (None, "empty message"),
        (b"\xff\xfe binary", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"payload": ' * 200 + b"{}" + b"}" * 200, "nested too deeply"),
        (b'{"total": ' + b"9" * 5000 + b"}", "not JSON"),
    ],
)
def test_undecodable_messages_are_invalid_with_a_reason(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        decode(raw)


def test_unknown_type_is_invalid():
    event = Saga().created()
    with pytest.raises(InvalidEvent, match="unknown event type 'order.OrderDeleted.v1'"):
        decode(wire(event, type="order.OrderDeleted.v1"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"eventId": "not-a-uuid"}, "eventId"),
        ({"timestamp": "2026-11-24T12:00:00"}, "timezone"),
        ({"correlationId": ""}, "correlationId"),
        ({"surprise": 1}, "surprise"),
        ({"key": "someone-else"}, "does not match payload orderId"),
    ],
)
def test_envelope_violations_are_invalid(change, reason):
    with pytest.raises(InvalidEvent, match=reason):
        decode(wire(Saga().created(), **change))


@pytest.mark.parametrize(
    "payload_change",
    [{"items": []}, {"items": [{"sku": "SKU-1", "qty": 0}]}, {"total": -1}, {"total": "lots"}, {"extra": True}],
)
def test_invalid_payloads_are_invalid_and_name_the_type(payload_change):
    event = Saga().created()
    data = event.to_wire()
    data["payload"].update(payload_change)
    with pytest.raises(InvalidEvent, match="invalid order.OrderCreated.v1 payload") as info:
        decode(json.dumps(data).encode())
    assert info.value.event_id == event.event_id


def test_producing_an_invalid_event_is_refused():
    with pytest.raises(InvalidEvent, match="refusing to produce"):
        new_event(topics.PAYMENT_AUTHORIZED, {"orderId": "o-1", "amount": -5, "authId": "a"}, correlation_id="c")


def test_total_keeps_cents_exactly():
    event = new_event(topics.ORDER_CREATED, {"orderId": "o", "items": [{"sku": "SKU-1", "qty": 1}], "total": 0.1},
                      correlation_id="c")
    assert decode(event.to_bytes()).payload.total == Decimal("0.1")
    with pytest.raises(InvalidEvent):
        new_event(topics.ORDER_CREATED, {"orderId": "o", "items": [{"sku": "SKU-1", "qty": 1}], "total": 1.005},
                  correlation_id="c")
