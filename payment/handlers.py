"""Payment: authorise exactly the order's total, refund exactly what was authorised, once."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from decimal import Decimal

from django.conf import settings

from payment.models import Payment, PaymentSimulator
from shopsite.events import requests, simulator, topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork

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
    if simulator.fails(sim.failure_rate):
        return "payment processor error (simulated failure rate)"
    return None


def on_order_created(event: Event, uow: UnitOfWork) -> None:
    payment = _payment(event, uow, Payment.AWAITING_INVENTORY)
    if payment.total is not None:
        return
    payment.total = event.payload.total  # type: ignore[attr-defined]
    if payment.status == Payment.AWAITING_TOTAL:
        _authorise(payment, uow, cause_id=payment.requested_by)
    payment.updated_at = datetime.now(timezone.utc)
    payment.save(using=uow.alias)


def on_inventory_reserved(event: Event, uow: UnitOfWork) -> None:
    payment = _payment(event, uow, Payment.AWAITING_TOTAL)
    if payment.status not in (Payment.AWAITING_TOTAL, Payment.AWAITING_INVENTORY) or payment.requested_by:
        # Already decided. A later reservation (an inventory retry) does not re-charge.
        return
    payment.requested_by = event.event_id
    if payment.total is not None:
        _authorise(payment, uow, cause_id=event.event_id)
    else:
        payment.status = Payment.AWAITING_TOTAL
    payment.updated_at = datetime.now(timezone.utc)
    payment.save(using=uow.alias)


def _authorise(payment: Payment, uow: UnitOfWork, cause_id: str | None) -> None:
    """Authorise exactly the order's total (ARCHITECTURE.md rule 4), or fail with a reason."""
    assert payment.total is not None
    now = datetime.now(timezone.utc)
    reason = decline_reason(payment.total, PaymentSimulator.current(uow.alias))
    if reason is not None:
        payment.status, payment.reason = Payment.FAILED, reason
        uow.emit_new(topics.PAYMENT_FAILED, {"orderId": payment.order_id, "reason": reason},
                     correlation_id=payment.correlation_id, causation_id=cause_id)
        return
    payment.status, payment.reason = Payment.AUTHORIZED, ""
    payment.amount = payment.total
    payment.auth_id = f"auth_{uuid.uuid4().hex[:20]}"
    payment.authorized_at = now
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
    _authorise(payment, uow, cause_id=event.event_id)
    payment.updated_at = datetime.now(timezone.utc)
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


HANDLERS = {
    topics.ORDER_CREATED: on_order_created,
    topics.INVENTORY_RESERVED: on_inventory_reserved,
    topics.INVENTORY_RELEASED: on_inventory_released,
    topics.SHIPPING_FAILED: on_shipping_failed,
    topics.RETRY_REQUESTED: on_retry_requested,
    topics.COMPENSATION_REQUESTED: on_compensation_requested,
}
