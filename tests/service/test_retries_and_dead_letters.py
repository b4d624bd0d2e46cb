"""Retries, compensations, simulators, dead-letter store and replay, the dead-letter budget."""

import json
from decimal import Decimal

import pytest

from inventory.models import Reservation, Stock
from orders import lifecycle
from payment.models import Payment, PaymentSimulator
from readmodel import deadletters
from readmodel.models import DeadLetter, OrderProjection
from shipping.models import Shipment, ShippingSimulator
from shopsite.events import topics
from shopsite.events.consumer import BatchProcessor, DeadLetterBudget, DeadLetterLimitReached, RetryPolicy
from shopsite.events.models import OutboxMessage
from shopsite.events.registry import consumer_spec
from shopsite.services import BY_NAME
from tests.factories import Saga, raw_message
from tests.service.helpers import deliver, outbox

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def stock(sku):
    row = Stock.objects.using("inventory_service").get(sku=sku)
    return row.available, row.reserved


def retry(saga, step):
    return saga.next(topics.RETRY_REQUESTED, {"step": step})


def compensate(saga, action):
    return saga.next(topics.COMPENSATION_REQUESTED, {"action": action})


def refusals(service):
    return [e.payload.reason for e in outbox(service, topics.REQUEST_REFUSED)]


# --- inventory -------------------------------------------------------------------

def test_inventory_retry_reserves_after_a_restock_and_conserves_stock():
    Stock.objects.using("inventory_service").filter(sku="SKU-3").update(available=0)
    saga = Saga(items=[{"sku": "SKU-3", "qty": 4}])
    deliver("inventory", [saga.created()])
    (failed,) = outbox("inventory", topics.INVENTORY_FAILED)
    assert "SKU-3" in failed.payload.reason
    Stock.objects.using("inventory_service").filter(sku="SKU-3").update(available=10)
    request = retry(saga, "inventory")
    deliver("inventory", [request])
    (reserved,) = outbox("inventory", topics.INVENTORY_RESERVED)
    assert reserved.causation_id == request.event_id
    assert stock("SKU-3") == (6, 4)


def test_inventory_retry_when_nothing_failed_is_refused_and_changes_nothing():
    saga = Saga()
    deliver("inventory", [saga.created()])
    before = stock("SKU-1")
    deliver("inventory", [retry(saga, "inventory")])
    assert refusals("inventory") == ["nothing to retry: inventory is RESERVED"]
    assert len(outbox("inventory", topics.INVENTORY_RESERVED)) == 1 and stock("SKU-1") == before


def test_release_returns_exactly_the_reserved_units_once():
    saga = Saga(items=[{"sku": "SKU-6", "qty": 7}, {"sku": "SKU-7", "qty": 1}])
    deliver("inventory", [saga.created()])
    assert stock("SKU-6") == (993, 7)
    request = compensate(saga, "releaseInventory")
    deliver("inventory", [request])
    # Released once shipping has said it will never ship the order (architecture rule 6).
    deliver("inventory", [saga.next(topics.SHIPMENT_CANCELLED, {"reason": "stock release requested"}, cause=request)])
    deliver("inventory", [compensate(saga, "releaseInventory")])
    assert stock("SKU-6") == (1000, 0) and stock("SKU-7") == (1000, 0)
    (released,) = outbox("inventory", topics.INVENTORY_RELEASED)
    assert [i.model_dump() for i in released.payload.releasedItems] == [{"sku": "SKU-6", "qty": 7}, {"sku": "SKU-7", "qty": 1}]
    assert refusals("inventory") == ["release refused: already released"]
    assert Reservation.objects.using("inventory_service").get(pk=saga.order_id).status == Reservation.RELEASED


def test_other_services_steps_are_not_the_inventorys_business():
    saga = Saga()
    deliver("inventory", [saga.created(), retry(saga, "payment"), compensate(saga, "refundPayment")])
    assert refusals("inventory") == []


# --- payment -----------------------------------------------------------------------

def test_decline_limit_fails_payment_and_retry_after_clearing_it_authorises_once():
    PaymentSimulator.objects.using("payment_service").create(pk="default", decline_above=Decimal("50"))
    saga = Saga(total=80)
    deliver("payment", [saga.created(), saga.reserved()])
    (failed,) = outbox("payment", topics.PAYMENT_FAILED)
    assert "80" in failed.payload.reason and "50" in failed.payload.reason
    PaymentSimulator.objects.using("payment_service").filter(pk="default").update(decline_above=None)
    deliver("payment", [retry(saga, "payment")])
    deliver("payment", [retry(saga, "payment")])  # a second retry finds nothing to do
    (authorized,) = outbox("payment", topics.PAYMENT_AUTHORIZED)
    assert authorized.payload.amount == Decimal("80")
    assert refusals("payment") == ["nothing to retry: payment is AUTHORIZED"]


def test_failure_rate_one_always_fails_and_zero_never_does():
    PaymentSimulator.objects.using("payment_service").create(pk="default", failure_rate=1.0)
    sagas = [Saga() for _ in range(5)]
    for saga in sagas:
        deliver("payment", [saga.created(), saga.reserved()])
    assert len(outbox("payment", topics.PAYMENT_FAILED)) == 5
    PaymentSimulator.objects.using("payment_service").filter(pk="default").update(failure_rate=0.0)
    for saga in sagas:
        deliver("payment", [retry(saga, "payment")])
    assert len(outbox("payment", topics.PAYMENT_AUTHORIZED)) == 5


def test_refund_returns_exactly_the_authorised_amount_once():
    saga = Saga(total=37.5)
    deliver("payment", [saga.created(), saga.reserved()])
    deliver("payment", [compensate(saga, "refundPayment")])
    deliver("payment", [compensate(saga, "refundPayment")])
    (refund,) = outbox("payment", topics.PAYMENT_REFUNDED)
    assert refund.payload.amount == Decimal("37.5")
    payment = Payment.objects.using("payment_service").get(pk=saga.order_id)
    assert payment.status == Payment.REFUNDED and payment.refunded_amount == Decimal("37.5")
    assert refusals("payment") == ["refund refused: already refunded"]


def test_refund_of_a_failed_payment_is_refused():
    PaymentSimulator.objects.using("payment_service").create(pk="default", failure_rate=1.0)
    saga = Saga()
    deliver("payment", [saga.created(), saga.reserved(), compensate(saga, "refundPayment")])
    assert refusals("payment") == ["refund refused: no authorised payment (payment is FAILED)"]
    assert not outbox("payment", topics.PAYMENT_REFUNDED)


def test_payment_retry_after_stock_was_released_is_refused():
    PaymentSimulator.objects.using("payment_service").create(pk="default", failure_rate=1.0)
    saga = Saga()
    created, reserved = saga.created(), saga.reserved()
    released = saga.next(topics.INVENTORY_RELEASED, {"releasedItems": saga.items})
    PaymentSimulator.objects.using("payment_service").filter(pk="default").update(failure_rate=0.0)
    deliver("payment", [created])
    PaymentSimulator.objects.using("payment_service").filter(pk="default").update(failure_rate=1.0)
    deliver("payment", [reserved])
    PaymentSimulator.objects.using("payment_service").filter(pk="default").update(failure_rate=0.0)
    deliver("payment", [released, retry(saga, "payment")])
    assert not outbox("payment", topics.PAYMENT_AUTHORIZED)
    assert refusals("payment") == ["retry refused: the order's stock was released (compensated)"]


# --- shipping ----------------------------------------------------------------------

def test_outage_fails_shipping_and_retry_after_it_ships_once():
    ShippingSimulator.objects.using("shipping_service").create(pk="default", outage=True)
    saga = Saga()
    saga.created(), saga.reserved()
    deliver("shipping", [saga.authorized()])
    (failed,) = outbox("shipping", topics.SHIPPING_FAILED)
    assert "outage" in failed.payload.reason
    deliver("shipping", [retry(saga, "shipping")])  # still down: fails again, may be retried again
    assert len(outbox("shipping", topics.SHIPPING_FAILED)) == 2
    ShippingSimulator.objects.using("shipping_service").filter(pk="default").update(outage=False)
    deliver("shipping", [retry(saga, "shipping"), retry(saga, "shipping")])
    assert len(outbox("shipping", topics.ORDER_SHIPPED)) == 1
    assert refusals("shipping") == ["nothing to retry: shipping is SHIPPED"]


def test_a_refunded_order_never_ships():
    ShippingSimulator.objects.using("shipping_service").create(pk="default", outage=True)
    saga = Saga()
    saga.created(), saga.reserved()
    deliver("shipping", [saga.authorized()])
    refunded = saga.next(topics.PAYMENT_REFUNDED, {"amount": saga.total, "refundId": "re_1"})
    ShippingSimulator.objects.using("shipping_service").filter(pk="default").update(outage=False)
    deliver("shipping", [refunded, retry(saga, "shipping")])
    assert not outbox("shipping", topics.ORDER_SHIPPED)
    assert Shipment.objects.using("shipping_service").get(pk=saga.order_id).status == Shipment.CANCELLED
    assert refusals("shipping") == ["nothing to retry: shipping is CANCELLED"]


# --- automatic compensation policy -------------------------------------------------

def test_auto_compensation_is_off_by_default(settings):
    assert settings.AUTO_COMPENSATION is False
    saga = Saga()
    deliver("inventory", [saga.created()])
    saga.reserved(), saga.authorized()
    deliver("inventory", [saga.next(topics.SHIPPING_FAILED, {"reason": "outage"})])
    assert not outbox("inventory", topics.INVENTORY_RELEASED)


def test_auto_compensation_refunds_and_releases_after_a_shipping_failure(settings):
    settings.AUTO_COMPENSATION = True
    saga = Saga(items=[{"sku": "SKU-8", "qty": 2}], total=30)
    created = saga.created()
    deliver("inventory", [created])
    reserved = outbox("inventory", topics.INVENTORY_RESERVED)[0]
    deliver("payment", [created, reserved])
    saga.last = outbox("payment", topics.PAYMENT_AUTHORIZED)[0]
    shipping_failed = saga.next(topics.SHIPPING_FAILED, {"reason": "outage"})
    deliver("inventory", [shipping_failed])
    deliver("payment", [shipping_failed])
    (refunded,) = outbox("payment", topics.PAYMENT_REFUNDED)
    assert refunded.payload.amount == Decimal("30")
    assert stock("SKU-8") == (998, 2)  # the refund alone does not say the order will never ship
    deliver("shipping", [refunded])
    deliver("inventory", outbox("shipping", topics.SHIPMENT_CANCELLED))
    assert stock("SKU-8") == (1000, 0)


# --- order status and timeline -----------------------------------------------------

def test_refund_moves_the_projection_to_refunded_and_refusals_show_in_the_timeline():
    saga = Saga()
    events = [saga.created(), saga.reserved(), saga.authorized(), saga.next(topics.SHIPPING_FAILED, {"reason": "x"})]
    request = compensate(saga, "refundPayment")
    refund = saga.next(topics.PAYMENT_REFUNDED, {"amount": saga.total, "refundId": "re_1"})
    second = compensate(saga, "refundPayment")
    refused = saga.next(topics.REQUEST_REFUSED, {"request": "compensation", "action": "refundPayment",
                                                 "reason": "refund refused: already refunded",
                                                 "requestEventId": second.event_id})
    deliver("readmodel", [*events, request, refund, second, refused])
    row = OrderProjection.objects.using("read_model_service").get(pk=saga.order_id)
    assert row.current_status == lifecycle.REFUNDED
    assert row.timeline[-1]["details"]["reason"] == "refund refused: already refunded"


# --- dead letters ------------------------------------------------------------------

def dead_letter_from(service, raw):
    deliver(service, [raw])
    (letter,) = outbox(service, topics.DEAD_LETTER)
    return letter


def test_dead_letters_of_one_message_are_stored_once_with_every_consumers_error():
    bad = Saga().created().to_wire()
    bad["payload"]["items"][0]["qty"] = -1
    raw = raw_message(json.dumps(bad).encode(), key=bad["key"])
    letters = [dead_letter_from(service, raw) for service in ("inventory", "payment")]
    deliver("readmodel", letters + letters)  # redelivered: stored once
    (row,) = DeadLetter.objects.using("read_model_service").all()
    assert row.id == f"{topics.ORDER_CREATED}:{raw.partition()}:{raw.offset()}"
    assert [e["consumer"] for e in row.errors] == ["inventory", "payment"]
    assert row.original_event_id == bad["eventId"] and row.order_id == bad["key"] and row.status == "PENDING"


def test_poison_with_nul_characters_is_dead_lettered_and_stored_on_every_backend():
    # PostgreSQL's text and jsonb cannot hold U+0000: a dead letter carrying one could not be
    # written, and the consumer paused on the same poison for ever.
    bad = Saga().created().to_wire()
    bad["payload"]["items"][0]["sku"] = "SKU-\x00"
    raws = [raw_message(b"\x00\x01binary\x00", key="k\x00nul"),
            raw_message(json.dumps(bad).encode(), key=bad["key"])]
    deliver("inventory", raws)
    letters = outbox("inventory", topics.DEAD_LETTER)
    assert [letter.payload.offset for letter in letters] == [r.offset() for r in raws]
    assert "\x00" not in json.dumps([letter.payload.model_dump(mode="json") for letter in letters])
    deliver("readmodel", letters)
    assert DeadLetter.objects.using("read_model_service").count() == 2


def test_an_unreadable_dead_letter_with_nul_characters_is_stored():
    deliver("readmodel", [raw_message(b"\x00\x01not json\x00", topic=topics.DEAD_LETTER, key="k\x00")])
    (row,) = DeadLetter.objects.using("read_model_service").all()
    assert row.original_type == "unreadable dead letter" and "\x00" not in row.payload + row.order_id


def test_replay_publishes_a_corrected_event_and_counts_replays():
    bad = Saga().created().to_wire()
    bad["payload"]["items"][0]["qty"] = -1
    letter = dead_letter_from("inventory", raw_message(json.dumps(bad).encode(), key=bad["key"]))
    deliver("readmodel", [letter])
    letter_id = DeadLetter.objects.using("read_model_service").get().id
    with pytest.raises(deadletters.ReplayRefused, match="not a valid event"):
        deadletters.replay(letter_id)  # as it was, it would only fail again
    fixed = json.loads(json.dumps(bad))
    fixed["payload"]["items"][0]["qty"] = 1
    event = deadletters.replay(letter_id, fixed)
    assert event.event_id == bad["eventId"] and event.headers["x-replay-count"] == 1
    row = OutboxMessage.objects.using("read_model_service").get(type=topics.ORDER_CREATED)
    assert row.payload["payload"]["items"][0]["qty"] == 1 and row.payload["headers"] == {"x-replay-count": 1}
    for _ in range(2):
        deadletters.replay(letter_id, fixed)
    with pytest.raises(deadletters.ReplayRefused, match="limit 3"):
        deadletters.replay(letter_id, fixed)


def test_the_dead_letter_budget_stops_a_flood_without_committing_it():
    spec = consumer_spec(BY_NAME["inventory"])
    clock = {"now": 0.0}
    processor = BatchProcessor(spec, RetryPolicy(sleep=lambda _s: None),
                               DeadLetterBudget(limit=3, window=60, clock=lambda: clock["now"]))
    processor.process([raw_message(b"junk", key=f"k{i}") for i in range(3)])
    with pytest.raises(DeadLetterLimitReached):
        processor.process([raw_message(b"junk", key="k4")])
    assert len(outbox("inventory", topics.DEAD_LETTER)) == 3  # the refused batch wrote nothing
    clock["now"] = 61.0  # the window has passed: the message is handled normally
    processor.process([raw_message(b"junk", key="k4")])
    assert len(outbox("inventory", topics.DEAD_LETTER)) == 4


def test_a_dead_letter_that_cannot_be_stored_is_never_dead_lettered_again():
    from shopsite.events.consumer import ConsumerSpec, DeadLetterNotStored
    from tests.factories import message

    def broken_store(event, uow):
        raise RuntimeError("dead_letters table missing")

    letter = dead_letter_from("inventory", raw_message(b"junk", key="k-loop"))
    spec = ConsumerSpec(BY_NAME["readmodel"], {topics.DEAD_LETTER: broken_store})
    with pytest.raises(DeadLetterNotStored):
        BatchProcessor(spec, RetryPolicy(attempts=2, sleep=lambda _s: None)).process([message(letter)])
    assert not outbox("readmodel", topics.DEAD_LETTER)


def test_stock_of_a_shipped_order_cannot_be_released():
    saga = Saga(items=[{"sku": "SKU-4", "qty": 2}])
    created = saga.created()
    deliver("inventory", [created])
    saga.last = outbox("inventory", topics.INVENTORY_RESERVED)[0]
    saga.authorized()
    deliver("inventory", [saga.shipped(), compensate(saga, "releaseInventory")])
    assert stock("SKU-4") == (998, 2)
    assert refusals("inventory") == ["release refused: the order has shipped"]


def test_released_stock_cancels_a_failed_shipment_so_a_retry_cannot_ship_it():
    ShippingSimulator.objects.using("shipping_service").create(pk="default", outage=True)
    saga = Saga()
    saga.created(), saga.reserved()
    deliver("shipping", [saga.authorized()])
    released = saga.next(topics.INVENTORY_RELEASED, {"releasedItems": saga.items})
    ShippingSimulator.objects.using("shipping_service").filter(pk="default").update(outage=False)
    deliver("shipping", [released, retry(saga, "shipping")])
    assert not outbox("shipping", topics.ORDER_SHIPPED)
    assert refusals("shipping") == ["nothing to retry: shipping is CANCELLED"]
