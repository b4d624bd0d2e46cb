"""Inventory: reserve all lines or none; release exactly what was reserved, once."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from django.conf import settings

from inventory import reservations
from inventory.models import Reservation
from shopsite.events import requests, topics
from shopsite.events.envelope import Event
from shopsite.events.schemas import OrderCreated
from shopsite.events.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def _attempt(reservation: Reservation, uow: UnitOfWork, cause: Event) -> None:
    """Try to reserve the reservation's lines; record and announce the outcome."""
    outcome = reservations.reserve(uow.alias, reservation.items)
    reservation.status = Reservation.RESERVED if outcome.reserved else Reservation.FAILED
    reservation.reason = outcome.reason or ""
    reservation.updated_at = datetime.now(timezone.utc)
    reservation.save(using=uow.alias)
    if outcome.reserved:
        uow.emit_new(topics.INVENTORY_RESERVED,
                     {"orderId": reservation.order_id, "reservedItems": outcome.reserved}, cause=cause)
    else:
        uow.emit_new(topics.INVENTORY_FAILED, {"orderId": reservation.order_id, "reason": outcome.reason},
                     cause=cause)


def on_order_created(event: Event, uow: UnitOfWork) -> None:
    payload: OrderCreated = event.payload  # type: ignore[assignment]
    if Reservation.objects.using(uow.alias).filter(pk=payload.orderId).exists():
        log.info("order already has a reservation; nothing to do")
        return
    now = datetime.now(timezone.utc)
    reservation = Reservation(
        order_id=payload.orderId, correlation_id=event.correlation_id,
        items=reservations.merge_lines([i.model_dump() for i in payload.items]),
        status=Reservation.FAILED, created_at=now, updated_at=now,
    )
    reservation.save(using=uow.alias, force_insert=True)
    _attempt(reservation, uow, cause=event)


def _release(reservation: Reservation, uow: UnitOfWork, cause: Event) -> None:
    reservations.release(uow.alias, reservation.items)
    reservation.status = Reservation.RELEASED
    reservation.updated_at = datetime.now(timezone.utc)
    reservation.save(using=uow.alias)
    uow.emit_new(topics.INVENTORY_RELEASED,
                 {"orderId": reservation.order_id, "releasedItems": reservation.items}, cause=cause)


def _locked(uow: UnitOfWork, order_id: str) -> Reservation | None:
    return Reservation.objects.using(uow.alias).select_for_update().filter(pk=order_id).first()


def on_retry_requested(event: Event, uow: UnitOfWork) -> None:
    if not requests.is_retry_of(event, "inventory"):
        return
    reservation = _locked(uow, event.order_id)
    if reservation is None or reservation.status != Reservation.FAILED:
        state = reservation.status if reservation else "not attempted yet"
        requests.refuse(uow, event, f"nothing to retry: inventory is {state}")
        return
    _attempt(reservation, uow, cause=event)


def on_compensation_requested(event: Event, uow: UnitOfWork) -> None:
    if not requests.is_compensation(event, "releaseInventory"):
        return
    reservation = _locked(uow, event.order_id)
    if reservation is None or reservation.status != Reservation.RESERVED:
        if reservation is not None and reservation.status == Reservation.RELEASED:
            state = "already released"
        elif reservation is not None and reservation.status == Reservation.SHIPPED:
            state = "the order has shipped"
        elif reservation is not None and reservation.status == Reservation.ALLOCATED:
            state = "payment is authorised, the order may be shipping (refund the payment first)"
        else:
            state = f"nothing reserved (inventory is {reservation.status if reservation else 'not attempted yet'})"
        requests.refuse(uow, event, f"release refused: {state}")
        return
    _release(reservation, uow, cause=event)


def on_order_shipped(event: Event, uow: UnitOfWork) -> None:
    """Shipped goods are no longer ours to release."""
    reservation = _locked(uow, event.order_id)
    if reservation is not None and reservation.status in (Reservation.RESERVED, Reservation.ALLOCATED):
        reservation.status = Reservation.SHIPPED
        reservation.updated_at = datetime.now(timezone.utc)
        reservation.save(using=uow.alias)


def on_payment_authorized(event: Event, uow: UnitOfWork) -> None:
    """The reserved units are promised to shipping from now on: no release while it may ship them.

    Shipping ships on PaymentAuthorized without asking inventory, so a release
    accepted after this point could return stock that is leaving with a parcel.
    """
    reservation = _locked(uow, event.order_id)
    if reservation is not None and reservation.status == Reservation.RESERVED and not reservation.payment_refunded:
        reservation.status, reservation.updated_at = Reservation.ALLOCATED, datetime.now(timezone.utc)
        reservation.save(using=uow.alias)


def on_payment_refunded(event: Event, uow: UnitOfWork) -> None:
    """A refunded order never ships (shipping cancels it): its units may be released again.

    With automatic compensation they are released now: the ShippingFailed that
    caused the refund could not release them while the payment stood.
    """
    reservation = _locked(uow, event.order_id)
    if reservation is None or reservation.status not in (Reservation.ALLOCATED, Reservation.RESERVED):
        return
    reservation.payment_refunded = True
    reservation.status, reservation.updated_at = Reservation.RESERVED, datetime.now(timezone.utc)
    if settings.AUTO_COMPENSATION:
        _release(reservation, uow, cause=event)  # saves it
    else:
        reservation.save(using=uow.alias)


def on_downstream_failure(event: Event, uow: UnitOfWork) -> None:
    """Automatic compensation (off unless SHOPSITE_AUTO_COMPENSATION=1): give the stock back."""
    if not settings.AUTO_COMPENSATION:
        return
    reservation = _locked(uow, event.order_id)
    if reservation is not None and reservation.status == Reservation.RESERVED:
        _release(reservation, uow, cause=event)


HANDLERS = {
    topics.ORDER_CREATED: on_order_created,
    topics.RETRY_REQUESTED: on_retry_requested,
    topics.COMPENSATION_REQUESTED: on_compensation_requested,
    topics.ORDER_SHIPPED: on_order_shipped,
    topics.PAYMENT_FAILED: on_downstream_failure,
    topics.SHIPPING_FAILED: on_downstream_failure,
    topics.PAYMENT_AUTHORIZED: on_payment_authorized,
    topics.PAYMENT_REFUNDED: on_payment_refunded,
}
