"""Inventory: reserve all lines or none; release exactly what was reserved, once."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from django.conf import settings

from inventory import reservations
from inventory.models import Reservation
from shopsite.events import topics
from shopsite.events.consumer import BatchHandler, Handler
from shopsite.events.envelope import Event
from shopsite.events.schemas import OrderCreated
from shopsite.events.unit_of_work import UnitOfWork
from shopsite.saga import requests

log = logging.getLogger(__name__)


def _attempt(reservation: Reservation, uow: UnitOfWork, cause: Event) -> None:
    """Try to reserve one order's lines on its own; record and announce the outcome."""
    ledger = reservations.StockLedger(uow, (line["sku"] for line in reservation.items))
    now = datetime.now(timezone.utc)
    _reserve(reservation, ledger, uow, cause, now)
    ledger.save(now)
    reservation.save(using=uow.alias)


def _reserve(reservation: Reservation, ledger: reservations.StockLedger, uow: UnitOfWork, cause: Event,
             now: datetime) -> None:
    """Reserve in memory through the ledger, set the reservation's outcome and announce it."""
    outcome = ledger.reserve(reservation.items)
    reservation.status = Reservation.RESERVED if outcome.reserved else Reservation.FAILED
    reservation.reason = outcome.reason or ""
    reservation.updated_at = now
    if outcome.reserved:
        uow.emit_new(topics.INVENTORY_RESERVED,
                     {"orderId": reservation.order_id, "reservedItems": outcome.reserved}, cause=cause)
    else:
        uow.emit_new(topics.INVENTORY_FAILED, {"orderId": reservation.order_id, "reason": outcome.reason},
                     cause=cause)


def apply_events(events: list[Event], uow: UnitOfWork) -> None:
    """OrderCreated, PaymentAuthorized and OrderShipped, set-based.

    One locked load of the reservations the events touch, one of the stock
    their orders need; orders reserve in offset order against the in-memory
    stock (the first order gets the last unit, as one at a time); one bulk
    insert of new reservations and one bulk update each of changed
    reservations and stock.
    """
    ids = sorted({e.order_id for e in events})
    held = {r.order_id: r for r in Reservation.objects.using(uow.alias).select_for_update().filter(pk__in=ids)
            .order_by("pk")}
    existing = set(held)
    placed = [e for e in events if e.type == topics.ORDER_CREATED]
    skus = (i.sku for e in placed for i in e.payload.items)  # type: ignore[attr-defined]
    ledger = reservations.StockLedger(uow, skus)
    changed: dict[str, Reservation] = {}
    now = datetime.now(timezone.utc)
    for event in events:
        if event.type == topics.ORDER_CREATED:
            if event.order_id in held:
                log.debug("order already has a reservation; nothing to do")
                continue
            payload: OrderCreated = event.payload  # type: ignore[assignment]
            reservation = held[event.order_id] = Reservation(
                order_id=payload.orderId, correlation_id=event.correlation_id,
                items=reservations.merge_lines([i.model_dump() for i in payload.items]),
                status=Reservation.FAILED, created_at=now, updated_at=now,
            )
            _reserve(reservation, ledger, uow, event, now)
            changed[reservation.order_id] = reservation
        elif event.type == topics.PAYMENT_AUTHORIZED:
            # The reserved units are promised to shipping from now on: no release while it may
            # ship them (shipping ships on PaymentAuthorized without asking inventory).
            promised = held.get(event.order_id)
            if promised is not None and promised.status == Reservation.RESERVED and not promised.payment_refunded:
                promised.status, promised.updated_at = Reservation.ALLOCATED, now
                changed[promised.order_id] = promised
        elif event.type == topics.ORDER_SHIPPED:
            # Shipped goods are no longer ours to release.
            shipped = held.get(event.order_id)
            if shipped is not None and shipped.status in (Reservation.RESERVED, Reservation.ALLOCATED):
                shipped.status, shipped.updated_at = Reservation.SHIPPED, now
                changed[shipped.order_id] = shipped
        else:
            raise ValueError(f"inventory's batch handler got {event.type}")
    ledger.save(now)
    uow.insert_rows([r for oid, r in changed.items() if oid not in existing])
    updated = [r for oid, r in changed.items() if oid in existing]
    uow.update_rows(updated, ["status", "reason", "updated_at"])


def _release(reservation: Reservation, uow: UnitOfWork, cause: Event) -> None:
    reservations.release(uow, reservation.items)
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


HAPPY_PATH = BatchHandler(apply_events)
HANDLERS: dict[str, Handler] = {
    topics.ORDER_CREATED: HAPPY_PATH,
    topics.ORDER_SHIPPED: HAPPY_PATH,
    topics.RETRY_REQUESTED: on_retry_requested,
    topics.COMPENSATION_REQUESTED: on_compensation_requested,
    topics.PAYMENT_FAILED: on_downstream_failure,
    topics.SHIPPING_FAILED: on_downstream_failure,
    topics.PAYMENT_AUTHORIZED: HAPPY_PATH,
    topics.PAYMENT_REFUNDED: on_payment_refunded,
}
