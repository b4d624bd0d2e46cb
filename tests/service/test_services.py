"""Each service's handlers, as plain functions of (event, unit of work) on real databases."""

from decimal import Decimal

import pytest

from inventory.models import Reservation, Stock
from orders import lifecycle
from orders.commands import place_order
from orders.models import Order
from payment.models import Payment
from readmodel.models import OrderProjection
from shipping.models import Shipment
from shopsite.events import topics
from tests.factories import Saga
from tests.service.helpers import deliver, outbox

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def stock(sku):
    row = Stock.objects.using("inventory_service").get(sku=sku)
    return row.available, row.reserved


# --- inventory -----------------------------------------------------------------

def test_inventory_reserves_all_lines_and_conserves_units():
    saga = Saga(items=[{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-5", "qty": 1}, {"sku": "SKU-1", "qty": 3}])
    created = saga.created()
    deliver("inventory", [created])
    assert stock("SKU-1") == (995, 5) and stock("SKU-5") == (999, 1)
    (reserved,) = outbox("inventory", topics.INVENTORY_RESERVED)
    assert [i.model_dump() for i in reserved.payload.reservedItems] == [{"sku": "SKU-1", "qty": 5}, {"sku": "SKU-5", "qty": 1}]
    assert reserved.causation_id == created.event_id and reserved.correlation_id == created.correlation_id
    assert Reservation.objects.using("inventory_service").get(pk=saga.order_id).status == Reservation.RESERVED


def test_inventory_fails_the_whole_order_naming_the_short_sku():
    Stock.objects.using("inventory_service").filter(sku="SKU-3").update(available=1)
    saga = Saga(items=[{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-3", "qty": 2}])
    deliver("inventory", [saga.created()])
    assert stock("SKU-1") == (1000, 0) and stock("SKU-3") == (1, 0)  # all or nothing
    (failed,) = outbox("inventory", topics.INVENTORY_FAILED)
    assert "SKU-3" in failed.payload.reason and "SKU-1" not in failed.payload.reason
    assert not outbox("inventory", topics.INVENTORY_RESERVED)


def test_inventory_rejects_unknown_skus():
    deliver("inventory", [Saga(items=[{"sku": "NOPE-1", "qty": 1}]).created()])
    (failed,) = outbox("inventory", topics.INVENTORY_FAILED)
    assert failed.payload.reason == "unknown SKU NOPE-1"


# --- payment -------------------------------------------------------------------

@pytest.mark.parametrize("total_first", [True, False], ids=["created-first", "reserved-first"])
def test_payment_authorises_exactly_the_total_whatever_the_arrival_order(total_first):
    saga = Saga(total=123.45)
    created, reserved = saga.created(), saga.reserved()
    for event in ([created, reserved] if total_first else [reserved, created]):
        deliver("payment", [event])
    payment = Payment.objects.using("payment_service").get(pk=saga.order_id)
    assert payment.status == Payment.AUTHORIZED and payment.amount == Decimal("123.45")
    (authorized,) = outbox("payment", topics.PAYMENT_AUTHORIZED)
    assert authorized.payload.amount == Decimal("123.45")
    assert authorized.causation_id == reserved.event_id  # caused by the reservation, in either order


def test_payment_never_authorises_twice():
    saga = Saga()
    created, reserved = saga.created(), saga.reserved()
    second_reservation = saga.next(topics.INVENTORY_RESERVED, {"reservedItems": saga.items}, cause=created)
    deliver("payment", [created, reserved, second_reservation])
    assert len(outbox("payment", topics.PAYMENT_AUTHORIZED)) == 1


# --- shipping ------------------------------------------------------------------

def test_shipping_ships_once_with_carrier_and_tracking():
    saga = Saga()
    saga.created(), saga.reserved()
    authorized = saga.authorized()
    again = saga.next(topics.PAYMENT_AUTHORIZED, {"amount": saga.total, "authId": "auth_2"}, cause=authorized)
    deliver("shipping", [authorized, again])
    (shipped,) = outbox("shipping", topics.ORDER_SHIPPED)
    shipment = Shipment.objects.using("shipping_service").get(pk=saga.order_id)
    assert shipment.status == Shipment.SHIPPED
    assert (shipped.payload.carrier, shipped.payload.trackingId) == (shipment.carrier, shipment.tracking_id)


# --- orders --------------------------------------------------------------------

def test_order_follows_the_saga_even_when_events_arrive_out_of_order():
    placed = place_order([{"sku": "SKU-1", "qty": 2}], Decimal("20"))
    order = placed.order
    (created,) = outbox("orders", topics.ORDER_CREATED)
    saga = Saga(order_id=order.order_id)
    saga.correlation_id, saga.last, saga.clock = order.correlation_id, created, created.timestamp
    reserved, authorized, shipped = saga.reserved(), saga.authorized(), saga.shipped()
    deliver("orders", [shipped])
    assert Order.objects.using("order_service").get(pk=order.order_id).status == lifecycle.CREATED
    deliver("orders", [authorized, reserved])
    order.refresh_from_db(using="order_service")
    assert order.status == lifecycle.SHIPPED
    assert [h["type"] for h in order.history] == [
        topics.ORDER_CREATED, topics.INVENTORY_RESERVED, topics.PAYMENT_AUTHORIZED, topics.ORDER_SHIPPED]
    assert order.history[3]["at"] == shipped.to_wire()["timestamp"]  # the event's own time, not processing time


def test_an_event_for_an_unknown_order_is_dead_lettered_by_the_order_service():
    deliver("orders", [Saga().reserved()])
    (letter,) = outbox("orders", topics.DEAD_LETTER)
    assert "no order" in letter.payload.error


# --- read model ----------------------------------------------------------------

def test_projection_is_the_same_whatever_the_arrival_order():
    saga = Saga(total=42)
    events = saga.happy_path()
    deliver("readmodel", list(reversed(events)))
    row = OrderProjection.objects.using("read_model_service").get(pk=saga.order_id)
    assert row.current_status == lifecycle.SHIPPED
    assert [e["eventId"] for e in row.timeline] == [e.event_id for e in events]
    assert row.created_at == events[0].timestamp and row.total == Decimal("42")


def test_projection_shows_an_order_before_its_order_created_arrives():
    saga = Saga()
    saga.created()
    reserved = saga.reserved()
    deliver("readmodel", [reserved])
    row = OrderProjection.objects.using("read_model_service").get(pk=saga.order_id)
    assert row.current_status == lifecycle.INVENTORY_RESERVED  # a reservation implies the order exists
    assert row.created_at == reserved.timestamp and len(row.timeline) == 1
