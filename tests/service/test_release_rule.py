"""Stock goes back only when nobody can ship the order any more (README, failure handling; architecture rule 6).

Shipping says so (ShipmentCancelled); inventory waits for it. The order
service keeps a payment retry and a release apart.
"""

import pytest

from inventory.models import Reservation, Stock
from orders import commands, operations
from orders.models import Order
from shipping.models import Shipment
from orders import lifecycle
from shopsite.events import topics
from tests.factories import Saga
from tests.service.helpers import deliver, outbox

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def stock(sku):
    row = Stock.objects.using("inventory_service").get(sku=sku)
    return row.available, row.reserved


def compensate(saga, action):
    return saga.next(topics.COMPENSATION_REQUESTED, {"action": action})


def cancelled(saga, cause=None):
    return saga.next(topics.SHIPMENT_CANCELLED, {"reason": "payment refunded"}, cause=cause)


def refusals(service):
    return [e.payload.reason for e in outbox(service, topics.REQUEST_REFUSED)]


def reservation(saga):
    return Reservation.objects.using("inventory_service").get(pk=saga.order_id)


def reserved_saga(sku="SKU-5", qty=2):
    saga = Saga(items=[{"sku": sku, "qty": qty}])
    deliver("inventory", [saga.created()])
    saga.last = outbox("inventory", topics.INVENTORY_RESERVED)[0]
    return saga


# ---- inventory -------------------------------------------------------------------------


def test_a_release_request_waits_for_shipping_s_cancellation():
    """Race (a): the authorisation may already have reached shipping; inventory cannot know, so it waits."""
    saga = reserved_saga()
    request = compensate(saga, "releaseInventory")
    deliver("inventory", [request])
    assert stock("SKU-5") == (998, 2)
    assert not outbox("inventory", topics.INVENTORY_RELEASED) and not refusals("inventory")
    assert reservation(saga).release_requested_by == request.event_id
    deliver("inventory", [cancelled(saga, cause=request)])
    assert stock("SKU-5") == (1000, 0)
    [released] = outbox("inventory", topics.INVENTORY_RELEASED)
    assert released.causation_id == request.event_id
    assert reservation(saga).status == Reservation.RELEASED and reservation(saga).release_requested_by == ""


def test_a_waiting_release_is_refused_when_the_order_ships_instead():
    saga = reserved_saga()
    request = compensate(saga, "releaseInventory")
    deliver("inventory", [saga.authorized(), request])
    deliver("inventory", [saga.next(topics.ORDER_SHIPPED, {"carrier": "DHL", "trackingId": "DHL1"})])
    assert not outbox("inventory", topics.INVENTORY_RELEASED)
    [refused] = outbox("inventory", topics.REQUEST_REFUSED)
    assert refused.payload.reason == "release refused: the order has shipped"
    assert refused.payload.requestEventId == refused.causation_id == request.event_id
    assert reservation(saga).status == Reservation.SHIPPED
    assert stock("SKU-5")[1] == 2  # shipped units, for inventory's OrderShipped accounting


def test_once_shipping_has_cancelled_a_release_is_immediate_even_after_the_authorisation():
    saga = reserved_saga()
    deliver("inventory", [saga.authorized(), cancelled(saga), compensate(saga, "releaseInventory")])
    assert stock("SKU-5") == (1000, 0)
    assert len(outbox("inventory", topics.INVENTORY_RELEASED)) == 1


def test_a_refund_alone_releases_nothing_the_order_may_have_shipped():
    """Race (b): shipped, then refunded; the refund may reach inventory before OrderShipped."""
    saga = reserved_saga()
    refunded = saga.next(topics.PAYMENT_REFUNDED, {"amount": saga.total, "refundId": "ref_1"})
    deliver("inventory", [saga.authorized(), refunded, compensate(saga, "releaseInventory")])
    assert stock("SKU-5") == (998, 2)
    assert not outbox("inventory", topics.INVENTORY_RELEASED)


def test_a_second_request_while_one_waits_is_refused():
    saga = reserved_saga()
    deliver("inventory", [compensate(saga, "releaseInventory"), compensate(saga, "releaseInventory")])
    assert refusals("inventory") == ["release refused: a release is already waiting for shipping's cancellation"]


def test_automatic_compensation_releases_when_shipping_cancels(settings):
    settings.AUTO_COMPENSATION = True
    saga = reserved_saga()
    deliver("inventory", [saga.authorized(), saga.next(topics.SHIPPING_FAILED, {"reason": "carrier outage"}),
                          saga.next(topics.PAYMENT_FAILED, {"reason": "declined"})])
    assert stock("SKU-5") == (998, 2)
    deliver("inventory", [cancelled(saga)])
    assert stock("SKU-5") == (1000, 0)
    assert len(outbox("inventory", topics.INVENTORY_RELEASED)) == 1


def test_without_automatic_compensation_a_cancellation_alone_releases_nothing():
    saga = reserved_saga()
    deliver("inventory", [cancelled(saga)])
    assert stock("SKU-5") == (998, 2)
    assert reservation(saga).shipping_cancelled


# ---- shipping ----------------------------------------------------------------------------


def test_shipping_cancels_on_a_release_request_and_says_so_once():
    saga = reserved_saga()
    request = compensate(saga, "releaseInventory")
    deliver("shipping", [request, saga.authorized(), compensate(saga, "releaseInventory")])
    assert not outbox("shipping", topics.ORDER_SHIPPED)
    [said] = outbox("shipping", topics.SHIPMENT_CANCELLED)
    assert said.causation_id == request.event_id
    assert Shipment.objects.using("shipping_service").get(pk=saga.order_id).status == Shipment.CANCELLED


def test_shipping_says_nothing_for_a_shipped_order():
    saga = reserved_saga()
    deliver("shipping", [saga.authorized()])
    deliver("shipping", [saga.next(topics.PAYMENT_REFUNDED, {"amount": saga.total, "refundId": "ref_1"}),
                         compensate(saga, "releaseInventory")])
    assert len(outbox("shipping", topics.ORDER_SHIPPED)) == 1
    assert not outbox("shipping", topics.SHIPMENT_CANCELLED)


def test_a_release_that_reaches_shipping_before_the_authorisation_means_it_never_ships():
    saga = reserved_saga()
    released = saga.next(topics.INVENTORY_RELEASED, {"releasedItems": saga.items})
    deliver("shipping", [released, saga.authorized()])
    assert not outbox("shipping", topics.ORDER_SHIPPED)
    assert Shipment.objects.using("shipping_service").get(pk=saga.order_id).status == Shipment.CANCELLED


def test_shipping_cancels_on_a_failed_payment_only_with_automatic_compensation(settings):
    saga = reserved_saga()
    deliver("shipping", [saga.next(topics.PAYMENT_FAILED, {"reason": "declined"})])
    assert not outbox("shipping", topics.SHIPMENT_CANCELLED)
    settings.AUTO_COMPENSATION = True
    other = reserved_saga(sku="SKU-6", qty=1)
    deliver("shipping", [other.next(topics.PAYMENT_FAILED, {"reason": "declined"})])
    assert len(outbox("shipping", topics.SHIPMENT_CANCELLED)) == 1


# ---- the order service -------------------------------------------------------------------


def placed_order(status):
    order = commands.place_order([{"sku": "SKU-5", "qty": 1}], 10).order
    Order.objects.using("order_service").filter(pk=order.order_id).update(status=status)
    return Order.objects.using("order_service").get(pk=order.order_id)


def test_the_order_service_records_a_request_in_the_history_at_once():
    order = placed_order(lifecycle.PAYMENT_FAILED)
    event = operations.request_compensation(order, "releaseInventory", "op")
    history = Order.objects.using("order_service").get(pk=order.order_id).history
    assert [e["eventId"] for e in history if e["type"] == topics.COMPENSATION_REQUESTED] == [event.event_id]
    # Consuming its own event later is a duplicate: the history keeps it once.
    deliver("orders", [event])
    history = Order.objects.using("order_service").get(pk=order.order_id).history
    assert [e["eventId"] for e in history].count(event.event_id) == 1


@pytest.mark.parametrize("status", [lifecycle.INVENTORY_RESERVED, lifecycle.PAYMENT_AUTHORIZED,
                                    lifecycle.SHIPPING_FAILED, lifecycle.SHIPPED])
def test_a_release_is_refused_unless_the_payment_failed_or_was_refunded(status):
    with pytest.raises(operations.Refused, match=f"the order is {status}"):
        operations.request_compensation(placed_order(status), "releaseInventory", "op")


def test_a_release_is_refused_while_a_payment_retry_is_outstanding():
    """Race (c): the retry may authorise and ship the order."""
    order = commands.place_order([{"sku": "SKU-5", "qty": 1}], 10).order
    saga = Saga(order_id=order.order_id)
    deliver("orders", [saga.next(topics.INVENTORY_RESERVED, {"reservedItems": [{"sku": "SKU-5", "qty": 1}]}),
                       saga.next(topics.PAYMENT_FAILED, {"reason": "declined"})])
    order.refresh_from_db(using="order_service")
    assert order.status == lifecycle.PAYMENT_FAILED
    retry = operations.request_retry(order, "payment", "op")
    with pytest.raises(operations.Refused, match="payment retry is still outstanding"):
        operations.request_compensation(order, "releaseInventory", "op")
    # Answered (failed again): now the release goes out.
    deliver("orders", [saga.next(topics.PAYMENT_FAILED, {"reason": "declined again"}, cause=retry)])
    order.refresh_from_db(using="order_service")
    assert order.status == lifecycle.PAYMENT_FAILED
    assert operations.request_compensation(order, "releaseInventory", "op").type == topics.COMPENSATION_REQUESTED


def test_a_payment_retry_is_refused_once_a_release_was_requested():
    order = placed_order(lifecycle.PAYMENT_FAILED)
    operations.request_compensation(order, "releaseInventory", "op")
    with pytest.raises(operations.Refused, match="release of the order's stock was requested"):
        operations.request_retry(order, "payment", "op")
    assert operations.request_retry(order, "shipping", "op").type == topics.RETRY_REQUESTED


def test_a_payment_retry_is_refused_with_automatic_compensation(settings):
    settings.AUTO_COMPENSATION = True
    with pytest.raises(operations.Refused, match="automatic compensation"):
        operations.request_retry(placed_order(lifecycle.PAYMENT_FAILED), "payment", "op")


@pytest.mark.parametrize("status", [lifecycle.CREATED, lifecycle.INVENTORY_RESERVED, lifecycle.PAYMENT_AUTHORIZED,
                                    lifecycle.PAYMENT_FAILED])
def test_a_refund_is_refused_while_shipping_may_be_shipping_the_order(status):
    """Refunded while PaymentAuthorized is on its way to shipping: shipped after the refund."""
    with pytest.raises(operations.Refused, match=f"the order is {status}"):
        operations.request_compensation(placed_order(status), "refundPayment", "op")


def test_a_refund_is_refused_while_a_shipping_retry_is_outstanding_and_a_retry_after_a_refund():
    order = placed_order(lifecycle.SHIPPING_FAILED)
    operations.request_retry(order, "shipping", "op")
    with pytest.raises(operations.Refused, match="shipping retry is still outstanding"):
        operations.request_compensation(order, "refundPayment", "op")
    other = placed_order(lifecycle.SHIPPING_FAILED)
    assert operations.request_compensation(other, "refundPayment", "op").type == topics.COMPENSATION_REQUESTED
    with pytest.raises(operations.Refused, match="refund of the order's payment was requested"):
        operations.request_retry(other, "shipping", "op")


def test_a_shipping_retry_is_refused_with_automatic_compensation(settings):
    settings.AUTO_COMPENSATION = True
    with pytest.raises(operations.Refused, match="automatic compensation"):
        operations.request_retry(placed_order(lifecycle.SHIPPING_FAILED), "shipping", "op")
