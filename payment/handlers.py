from __future__ import annotations

import uuid
from datetime import datetime, timezone

from payment.models import Payment
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork


def _payment(event: Event, uow: UnitOfWork, initial_status: str) -> Payment:
    now = datetime.now(timezone.utc)
    payment, _ = Payment.objects.using(uow.alias).select_for_update().get_or_create(
        order_id=event.order_id,
        defaults={"correlation_id": event.correlation_id, "status": initial_status,
                  "created_at": now, "updated_at": now},
    )
    return payment


def on_order_created(event: Event, uow: UnitOfWork) -> None:
    payment = _payment(event, uow, Payment.AWAITING_INVENTORY)
    if payment.total is not None:
        return
    payment.total = event.payload.total  # type: ignore[attr-defined]
    payment.updated_at = datetime.now(timezone.utc)
    if payment.status == Payment.AWAITING_TOTAL:
        _authorise(payment, uow)
    payment.save(using=uow.alias)


def on_inventory_reserved(event: Event, uow: UnitOfWork) -> None:
    payment = _payment(event, uow, Payment.AWAITING_TOTAL)
    if payment.status not in (Payment.AWAITING_TOTAL, Payment.AWAITING_INVENTORY) or payment.requested_by:
        return  # already decided: never authorise an order twice
    payment.requested_by = event.event_id
    payment.updated_at = datetime.now(timezone.utc)
    if payment.total is not None:
        _authorise(payment, uow)
    else:
        payment.status = Payment.AWAITING_TOTAL
    payment.save(using=uow.alias)


def _authorise(payment: Payment, uow: UnitOfWork) -> None:
    """Authorise exactly the order's total (ARCHITECTURE.md rule 4)."""
    now = datetime.now(timezone.utc)
    payment.status = Payment.AUTHORIZED
    payment.amount = payment.total
    payment.auth_id = f"auth_{uuid.uuid4().hex[:20]}"
    payment.authorized_at = now
    payment.updated_at = now
    uow.emit_new(
        topics.PAYMENT_AUTHORIZED,
        {"orderId": payment.order_id, "amount": payment.amount, "authId": payment.auth_id},
        correlation_id=payment.correlation_id,
        causation_id=payment.requested_by,
    )


HANDLERS = {
    topics.ORDER_CREATED: on_order_created,
    topics.INVENTORY_RESERVED: on_inventory_reserved,
}
