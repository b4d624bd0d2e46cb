"""Released stock never ships, and stock that may be shipping is never released (README, failure handling)."""

import pytest

from inventory.models import Stock
from shipping.models import Shipment
from shopsite.events import topics
from tests.factories import Saga
from tests.service.helpers import deliver, outbox

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def stock(sku):
    row = Stock.objects.using("inventory_service").get(sku=sku)
    return row.available, row.reserved


def compensate(saga, action):
    return saga.next(topics.COMPENSATION_REQUESTED, {"action": action})


def refusals(service):
    return [e.payload.reason for e in outbox(service, topics.REQUEST_REFUSED)]


def reserved_saga(sku="SKU-5", qty=2):
    saga = Saga(items=[{"sku": sku, "qty": qty}])
    deliver("inventory", [saga.created()])
    saga.last = outbox("inventory", topics.INVENTORY_RESERVED)[0]
    return saga


def test_stock_of_an_authorised_order_is_not_released_it_may_be_shipping():
    saga = reserved_saga()
    authorized = saga.authorized()
    deliver("inventory", [authorized, compensate(saga, "releaseInventory")])
    assert stock("SKU-5") == (998, 2)
    assert not outbox("inventory", topics.INVENTORY_RELEASED)
    assert refusals("inventory") == ["release refused: payment is authorised, the order may be shipping "
                                     "(refund the payment first)"]


def test_once_the_payment_is_refunded_the_stock_can_be_released():
    saga = reserved_saga()
    deliver("inventory", [saga.authorized(), saga.next(topics.PAYMENT_REFUNDED, {"amount": saga.total, "refundId": "ref_1"}),
                          compensate(saga, "releaseInventory")])
    assert stock("SKU-5") == (1000, 0)
    assert len(outbox("inventory", topics.INVENTORY_RELEASED)) == 1


def test_automatic_compensation_releases_an_authorised_order_s_stock_only_after_the_refund(settings):
    settings.AUTO_COMPENSATION = True
    saga = reserved_saga()
    deliver("inventory", [saga.authorized(), saga.next(topics.SHIPPING_FAILED, {"reason": "carrier outage"})])
    assert stock("SKU-5") == (998, 2)
    assert not outbox("inventory", topics.INVENTORY_RELEASED)
    # The automatic refund that follows the failure ends the order: now the stock goes back.
    deliver("inventory", [saga.next(topics.PAYMENT_REFUNDED, {"amount": saga.total, "refundId": "ref_1"})])
    assert stock("SKU-5") == (1000, 0)
    assert len(outbox("inventory", topics.INVENTORY_RELEASED)) == 1


def test_a_release_that_reaches_shipping_before_the_authorisation_means_it_never_ships():
    saga = reserved_saga()
    released = saga.next(topics.INVENTORY_RELEASED, {"releasedItems": saga.items})
    deliver("shipping", [released, saga.authorized()])
    assert not outbox("shipping", topics.ORDER_SHIPPED)
    assert Shipment.objects.using("shipping_service").get(pk=saga.order_id).status == Shipment.CANCELLED


def test_a_refund_seen_before_the_authorisation_still_frees_the_stock():
    """Topics are not ordered against each other: the refund may reach inventory first."""
    saga = reserved_saga()
    authorized = saga.authorized()
    refunded = saga.next(topics.PAYMENT_REFUNDED, {"amount": saga.total, "refundId": "ref_1"})
    deliver("inventory", [refunded, authorized, compensate(saga, "releaseInventory")])
    assert stock("SKU-5") == (1000, 0)
    assert len(outbox("inventory", topics.INVENTORY_RELEASED)) == 1
