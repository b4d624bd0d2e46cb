"""Inventory: reserve all lines or none; release exactly what was reserved, once.

Released only once shipping has cancelled the order (ShipmentCancelled):
shipping ships on PaymentAuthorized without asking inventory, so its
cancellation is the only fact that says the units will never leave
(docs/architecture.md section 10, rule 6).
"""

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
    held = uow.locked(Reservation, {e.order_id for e in events})
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
            # The reserved units are promised to shipping from now on (shipping ships on
            # PaymentAuthorized without asking inventory); a release still waits for shipping's
            # cancellation, as for any reservation.
            promised = held.get(event.order_id)
            if promised is not None and promised.status == Reservation.RESERVED:
                promised.status, promised.updated_at = Reservation.ALLOCATED, now
                changed[promised.order_id] = promised
        elif event.type == topics.ORDER_SHIPPED:
            # Shipped goods are no longer ours to release.
            shipped = held.get(event.order_id)
            if shipped is not None and shipped.status in RELEASABLE:
                shipped.status, shipped.updated_at = Reservation.SHIPPED, now
                if shipped.release_requested_by:
                    _refuse_waiting_release(shipped, uow, "release refused: the order has shipped")
                changed[shipped.order_id] = shipped
        else:
            raise ValueError(f"inventory's batch handler got {event.type}")
    ledger.save(now)
    uow.insert_rows([r for oid, r in changed.items() if oid not in existing])
    updated = [r for oid, r in changed.items() if oid in existing]
    uow.update_rows(updated, ["status", "reason", "release_requested_by", "updated_at"])


# What a release can give back: units still in the warehouse (reserved, or promised to shipping).
RELEASABLE = (Reservation.RESERVED, Reservation.ALLOCATED)


def _release(reservation: Reservation, uow: UnitOfWork, cause: Event | None = None,
             causation_id: str | None = None) -> None:
    reservations.release(uow, reservation.items)
    reservation.status = Reservation.RELEASED
    reservation.release_requested_by = ""
    reservation.updated_at = datetime.now(timezone.utc)
    reservation.save(using=uow.alias)
    uow.emit_new(topics.INVENTORY_RELEASED,
                 {"orderId": reservation.order_id, "releasedItems": reservation.items}, cause=cause,
                 correlation_id=reservation.correlation_id, causation_id=causation_id)


def _refuse_waiting_release(reservation: Reservation, uow: UnitOfWork, reason: str) -> None:
    """Answer the release request that waited for shipping (the caller saves the reservation)."""
    request_id, reservation.release_requested_by = reservation.release_requested_by, ""
    uow.emit_new(topics.REQUEST_REFUSED,
                 {"orderId": reservation.order_id, "request": "compensation", "action": "releaseInventory",
                  "reason": reason, "requestEventId": request_id},
                 correlation_id=reservation.correlation_id, causation_id=request_id)


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
    """releaseInventory: give the units back once shipping has said it will never ship the order.

    Shipping answers the same request with ShipmentCancelled (or has shipped:
    OrderShipped). Until one of them arrives the request waits on the
    reservation; topics are not ordered, so either may come first.
    """
    if not requests.is_compensation(event, "releaseInventory"):
        return
    reservation = _locked(uow, event.order_id)
    if reservation is None or reservation.status not in RELEASABLE:
        if reservation is not None and reservation.status == Reservation.RELEASED:
            state = "already released"
        elif reservation is not None and reservation.status == Reservation.SHIPPED:
            state = "the order has shipped"
        else:
            state = f"nothing reserved (inventory is {reservation.status if reservation else 'not attempted yet'})"
        requests.refuse(uow, event, f"release refused: {state}")
        return
    if reservation.shipping_cancelled:
        _release(reservation, uow, cause=event)
        return
    if reservation.release_requested_by:
        requests.refuse(uow, event, "release refused: a release is already waiting for shipping's cancellation")
        return
    reservation.release_requested_by = event.event_id
    reservation.updated_at = datetime.now(timezone.utc)
    reservation.save(using=uow.alias)


def on_shipment_cancelled(event: Event, uow: UnitOfWork) -> None:
    """Shipping will never ship the order: a waiting release (or automatic compensation) gives the units back."""
    reservation = _locked(uow, event.order_id)
    if reservation is None or reservation.shipping_cancelled:
        return
    reservation.shipping_cancelled = True
    if reservation.status in RELEASABLE and reservation.release_requested_by:
        _release(reservation, uow, causation_id=reservation.release_requested_by)  # saves it
    elif reservation.status in RELEASABLE and settings.AUTO_COMPENSATION:
        _release(reservation, uow, cause=event)
    else:
        reservation.updated_at = datetime.now(timezone.utc)
        reservation.save(using=uow.alias)


HAPPY_PATH = BatchHandler(apply_events)
HANDLERS: dict[str, Handler] = {
    topics.ORDER_CREATED: HAPPY_PATH,
    topics.ORDER_SHIPPED: HAPPY_PATH,
    topics.RETRY_REQUESTED: on_retry_requested,
    topics.COMPENSATION_REQUESTED: on_compensation_requested,
    topics.PAYMENT_AUTHORIZED: HAPPY_PATH,
    topics.SHIPMENT_CANCELLED: on_shipment_cancelled,
}

# Reserving is the saga's next step; the rest is bookkeeping (ConsumerSpec.lanes).
SAGA_LANE = frozenset({topics.ORDER_CREATED})
