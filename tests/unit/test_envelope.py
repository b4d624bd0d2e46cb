import json
from datetime import timezone
from decimal import Decimal

import pytest

from shopsite.events import topics
from shopsite.events.envelope import Event, InvalidEvent, decode, new_event
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


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"eventId": "{%s}"},  # formatted with the event id: braces, as uuid.UUID accepts
        {"eventId": "upper"},
        {"timestamp": "2026-11-24T12:00:00.100+00:00"},
        {"timestamp": "2026-11-24T13:00:00.100+01:00"},
        {"version": "1"},
        {"causationId": None},
        {"headers": {"source": "test"}},
    ],
)
def test_every_valid_shape_of_an_envelope_decodes_to_the_same_event(change):
    # Envelopes as this system writes them are checked on a fast path; any other valid shape
    # takes pydantic's, normalised the same way (canonical eventId, UTC timestamp).
    event = Saga().created()
    if change.get("eventId") == "upper":
        change = {"eventId": event.event_id.upper()}
    elif "eventId" in change:
        change = {"eventId": change["eventId"] % event.event_id}
    back = decode(wire(event, **change))
    expected_headers = change.get("headers") or {}
    assert back == Event(**{**vars(event), "headers": expected_headers})
    assert back.timestamp.tzinfo is timezone.utc and back.event_id == event.event_id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"eventId": "01a20dcb-80a9-7a27-89e5-d9f7a741106"}, "eventId"),  # one digit short
        ({"timestamp": "2026-02-30T12:00:00.000000Z"}, "timestamp"),  # a day that does not exist
        ({"version": 0}, "version"),
        ({"key": "k" * 65}, "key"),
        ({"causationId": "c" * 65}, "causationId"),
        ({"payload": []}, "payload"),
    ],
)
def test_an_envelope_that_is_almost_the_usual_shape_is_still_refused_with_the_reason(change, reason):
    with pytest.raises(InvalidEvent, match=reason):
        decode(wire(Saga().created(), **change))
