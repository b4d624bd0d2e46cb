"""Payment: authorise exactly the order's total, refund exactly what was authorised, once."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from decimal import Decimal

from django.conf import settings

from payment.models import Payment, PaymentSimulator
from shopsite import simulation
from shopsite.events import topics
from shopsite.events.consumer import BatchHandler, Handler
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork
from shopsite.saga import requests

log = logging.getLogger(__name__)


def _payment(event: Event, uow: UnitOfWork, initial_status: str) -> Payment:
    now = datetime.now(timezone.utc)
    payment, _ = Payment.objects.using(uow.alias).select_for_update().get_or_create(
        order_id=event.order_id,
        defaults={"correlation_id": event.correlation_id, "status": initial_status,
                  "created_at": now, "updated_at": now},
    )
    return payment


def decline_reason(total: Decimal, sim: PaymentSimulator) -> str | None:
    if sim.decline_above is not None and total > sim.decline_above:
        return f"declined: amount {total} exceeds the limit {sim.decline_above}"
    if simulation.fails(sim.failure_rate):
        return "payment processor error (simulated failure rate)"
    return None


# What the happy path changes on a payment that exists.
UPDATED_FIELDS = ["total", "status", "amount", "auth_id", "reason", "requested_by", "authorized_at", "updated_at"]


def apply_events(events: list[Event], uow: UnitOfWork) -> None:
    """OrderCreated (the total) and InventoryReserved (the go-ahead), set-based.

    One locked load of the payments the events touch, the simulator's
    settings at most once, every event applied in memory in offset order,
    one bulk insert and one bulk update.
    """
    payments = uow.locked(Payment, {e.order_id for e in events})
    existing = set(payments)
    processor = _Processor(uow)
    changed: dict[str, Payment] = {}
    for event in events:
        payment = payments.get(event.order_id)
        if payment is None:
            initial = Payment.AWAITING_INVENTORY if event.type == topics.ORDER_CREATED else Payment.AWAITING_TOTAL
            payment = payments[event.order_id] = Payment(
                order_id=event.order_id, correlation_id=event.correlation_id, status=initial,
                created_at=processor.now, updated_at=processor.now)
            changed[event.order_id] = payment  # a new row is written even when the event changes nothing else
        if event.type == topics.ORDER_CREATED:
            moved = _take_total(payment, event, processor)
        elif event.type == topics.INVENTORY_RESERVED:
            moved = _take_go_ahead(payment, event, processor)
        else:
            raise ValueError(f"payment's batch handler got {event.type}")
        if moved:
            payment.updated_at = processor.now
            changed[event.order_id] = payment
    uow.insert_rows([p for oid, p in changed.items() if oid not in existing])
    updated = [p for oid, p in changed.items() if oid in existing]
    uow.update_rows(updated, UPDATED_FIELDS)


class _Processor:
    """The simulated payment processor for one unit of work: its settings are read once, when first needed."""

    def __init__(self, uow: UnitOfWork):
        self.uow = uow
        self.now = datetime.now(timezone.utc)
        self._settings: PaymentSimulator | None = None

    @property
    def settings(self) -> PaymentSimulator:
        if self._settings is None:
            self._settings = PaymentSimulator.current(self.uow.alias)
        return self._settings


def _take_total(payment: Payment, event: Event, processor: _Processor) -> bool:
    if payment.total is not None:
        return False
    payment.total = event.payload.total  # type: ignore[attr-defined]
    if payment.status == Payment.AWAITING_TOTAL:
        _authorise(payment, processor, cause_id=payment.requested_by)
    return True


def _take_go_ahead(payment: Payment, event: Event, processor: _Processor) -> bool:
    if payment.status not in (Payment.AWAITING_TOTAL, Payment.AWAITING_INVENTORY) or payment.requested_by:
        # Already decided. A later reservation (an inventory retry) does not re-charge.
        return False
    payment.requested_by = event.event_id
    if payment.total is not None:
        _authorise(payment, processor, cause_id=event.event_id)
    else:
        payment.status = Payment.AWAITING_TOTAL
    return True


def _authorise(payment: Payment, processor: _Processor, cause_id: str | None) -> None:
    """Authorise exactly the order's total (docs/architecture.md section 10, rule 4), or fail with a reason."""
    assert payment.total is not None
    uow = processor.uow
    reason = decline_reason(payment.total, processor.settings)
    if reason is not None:
        payment.status, payment.reason = Payment.FAILED, reason
        uow.emit_new(topics.PAYMENT_FAILED, {"orderId": payment.order_id, "reason": reason},
                     correlation_id=payment.correlation_id, causation_id=cause_id)
        return
    payment.status, payment.reason = Payment.AUTHORIZED, ""
    payment.amount = payment.total
    payment.auth_id = f"auth_{uuid.uuid4().hex[:20]}"
    payment.authorized_at = processor.now
    uow.emit_new(
        topics.PAYMENT_AUTHORIZED,
        {"orderId": payment.order_id, "amount": payment.amount, "authId": payment.auth_id},
        correlation_id=payment.correlation_id,
        causation_id=cause_id,
    )


def _refund(payment: Payment, uow: UnitOfWork, cause: Event) -> None:
    """Return exactly the authorised amount (rule 4), at most once (rule 6)."""
    now = datetime.now(timezone.utc)
    payment.status = Payment.REFUNDED
    payment.refund_id = f"re_{uuid.uuid4().hex[:20]}"
    payment.refunded_amount = payment.amount
    payment.refunded_at = now
    uow.emit_new(topics.PAYMENT_REFUNDED,
                 {"orderId": payment.order_id, "amount": payment.amount, "refundId": payment.refund_id}, cause=cause)


def on_retry_requested(event: Event, uow: UnitOfWork) -> None:
    if not requests.is_retry_of(event, "payment"):
        return
    payment = Payment.objects.using(uow.alias).select_for_update().filter(pk=event.order_id).first()
    if payment is None or payment.status != Payment.FAILED:
        state = payment.status if payment else "not started"
        requests.refuse(uow, event, f"nothing to retry: payment is {state}")
        return
    if payment.inventory_released:
        requests.refuse(uow, event, "retry refused: the order's stock was released (compensated)")
        return
    processor = _Processor(uow)
    _authorise(payment, processor, cause_id=event.event_id)
    payment.updated_at = processor.now
    payment.save(using=uow.alias)


def on_compensation_requested(event: Event, uow: UnitOfWork) -> None:
    if not requests.is_compensation(event, "refundPayment"):
        return
    payment = Payment.objects.using(uow.alias).select_for_update().filter(pk=event.order_id).first()
    if payment is None or payment.status != Payment.AUTHORIZED:
        state = "already refunded" if payment and payment.status == Payment.REFUNDED else (
            f"no authorised payment (payment is {payment.status if payment else 'not started'})")
        requests.refuse(uow, event, f"refund refused: {state}")
        return
    _refund(payment, uow, cause=event)
    payment.updated_at = datetime.now(timezone.utc)
    payment.save(using=uow.alias)


def on_inventory_released(event: Event, uow: UnitOfWork) -> None:
    updated = Payment.objects.using(uow.alias).filter(pk=event.order_id).update(
        inventory_released=True, updated_at=datetime.now(timezone.utc))
    if not updated:
        _payment(event, uow, Payment.AWAITING_TOTAL)
        Payment.objects.using(uow.alias).filter(pk=event.order_id).update(inventory_released=True)


def on_shipping_failed(event: Event, uow: UnitOfWork) -> None:
    """Automatic compensation (off unless SHOPSITE_AUTO_COMPENSATION=1): refund what was authorised."""
    if not settings.AUTO_COMPENSATION:
        return
    payment = Payment.objects.using(uow.alias).select_for_update().filter(pk=event.order_id).first()
    if payment is not None and payment.status == Payment.AUTHORIZED:
        _refund(payment, uow, cause=event)
        payment.updated_at = datetime.now(timezone.utc)
        payment.save(using=uow.alias)


HAPPY_PATH = BatchHandler(apply_events)
HANDLERS: dict[str, Handler] = {
    topics.ORDER_CREATED: HAPPY_PATH,
    topics.INVENTORY_RESERVED: HAPPY_PATH,
    topics.INVENTORY_RELEASED: on_inventory_released,
    topics.SHIPPING_FAILED: on_shipping_failed,
    topics.RETRY_REQUESTED: on_retry_requested,
    topics.COMPENSATION_REQUESTED: on_compensation_requested,
}

# Authorising is the saga's next step, and needs the order's amount (ConsumerSpec.lanes).
SAGA_LANE = frozenset({topics.ORDER_CREATED, topics.INVENTORY_RESERVED})
