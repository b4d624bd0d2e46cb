"""Shipping: ship authorised orders once; a failed shipment can be retried, a refunded one never ships."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone

from django.conf import settings

from shipping.models import Shipment, ShippingSimulator
from shopsite import simulation
from shopsite.events import topics
from shopsite.events.consumer import BatchHandler, Handler
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork
from shopsite.saga import requests

CARRIERS = ("DHL", "UPS", "FedEx", "PostNL")


def carrier_for(order_id: str) -> str:
    """Spread orders over carriers deterministically (same order, same carrier)."""
    return CARRIERS[hashlib.sha256(order_id.encode()).digest()[0] % len(CARRIERS)]


def failure_reason(sim: ShippingSimulator, carrier: str) -> str | None:
    if sim.outage:
        return f"carrier outage: {carrier} is not accepting parcels"
    if simulation.fails(sim.failure_rate):
        return f"{carrier} rejected the parcel (simulated failure rate)"
    return None


def _attempt(shipment: Shipment, uow: UnitOfWork, cause: Event, sim: ShippingSimulator, now: datetime) -> None:
    """Hand the parcel to the carrier in memory and announce the outcome; the caller saves the shipment."""
    reason = failure_reason(sim, shipment.carrier)
    shipment.updated_at = now
    if reason is not None:
        shipment.status, shipment.reason = Shipment.FAILED, reason
        uow.emit_new(topics.SHIPPING_FAILED, {"orderId": shipment.order_id, "reason": reason}, cause=cause)
        return
    shipment.status, shipment.reason = Shipment.SHIPPED, ""
    shipment.tracking_id = f"{shipment.carrier[:3].upper()}{uuid.uuid4().hex[:16].upper()}"
    uow.emit_new(topics.ORDER_SHIPPED,
                 {"orderId": shipment.order_id, "carrier": shipment.carrier, "trackingId": shipment.tracking_id},
                 cause=cause)


def ship_authorised(events: list[Event], uow: UnitOfWork) -> None:
    """PaymentAuthorized, set-based: one load of existing shipments, one bulk insert of the new ones.

    An order with a shipment already (shipped, failed and awaiting a retry,
    or cancelled) is never shipped twice; a second insert of the same order
    by another process fails on the primary key and the batch is replayed.
    """
    attempted = uow.existing_pks(Shipment, {e.order_id for e in events})
    sim: ShippingSimulator | None = None
    now = datetime.now(timezone.utc)
    new: list[Shipment] = []
    for event in events:
        if event.order_id in attempted:
            continue
        attempted.add(event.order_id)
        sim = sim or ShippingSimulator.current(uow.alias)
        shipment = Shipment(order_id=event.order_id, correlation_id=event.correlation_id, status=Shipment.FAILED,
                            carrier=carrier_for(event.order_id), created_at=now, updated_at=now)
        _attempt(shipment, uow, event, sim, now)
        new.append(shipment)
    uow.insert_rows(new)


def on_retry_requested(event: Event, uow: UnitOfWork) -> None:
    if not requests.is_retry_of(event, "shipping"):
        return
    shipment = Shipment.objects.using(uow.alias).select_for_update().filter(pk=event.order_id).first()
    if shipment is None or shipment.status != Shipment.FAILED:
        state = shipment.status if shipment else "not attempted yet"
        requests.refuse(uow, event, f"nothing to retry: shipping is {state}")
        return
    _attempt(shipment, uow, event, ShippingSimulator.current(uow.alias), datetime.now(timezone.utc))
    shipment.save(using=uow.alias)


def _cancel(event: Event, uow: UnitOfWork, reason: str) -> None:
    """Never ship this order: record CANCELLED and say so, once (ShipmentCancelled).

    The cancellation is the fact inventory waits for before it releases the
    order's stock: from here on neither a late PaymentAuthorized nor a
    shipping retry ships it (docs/architecture.md section 10, rule 6). A
    shipped order is left alone; its OrderShipped tells inventory instead.
    """
    now = datetime.now(timezone.utc)
    shipment = Shipment.objects.using(uow.alias).select_for_update().filter(pk=event.order_id).first()
    if shipment is None:
        Shipment(order_id=event.order_id, correlation_id=event.correlation_id, status=Shipment.CANCELLED,
                 reason=reason, created_at=now, updated_at=now).save(using=uow.alias, force_insert=True)
    elif shipment.status == Shipment.FAILED:
        shipment.status, shipment.reason, shipment.updated_at = Shipment.CANCELLED, reason, now
        shipment.save(using=uow.alias)
    else:
        return
    uow.emit_new(topics.SHIPMENT_CANCELLED, {"orderId": event.order_id, "reason": reason}, cause=event)


def on_payment_refunded(event: Event, uow: UnitOfWork) -> None:
    _cancel(event, uow, "payment refunded")


def on_inventory_released(event: Event, uow: UnitOfWork) -> None:
    _cancel(event, uow, "stock released")


def on_compensation_requested(event: Event, uow: UnitOfWork) -> None:
    """A release of the order's stock is asked for: inventory gives it back only once shipping has cancelled."""
    if requests.is_compensation(event, "releaseInventory"):
        _cancel(event, uow, "stock release requested")


def on_payment_failed(event: Event, uow: UnitOfWork) -> None:
    """Automatic compensation (SHOPSITE_AUTO_COMPENSATION=1): a failed payment is final, so the order never ships.

    The order service refuses payment retries while automatic compensation is on.
    """
    if settings.AUTO_COMPENSATION:
        _cancel(event, uow, "payment failed")


HANDLERS: dict[str, Handler] = {
    topics.PAYMENT_AUTHORIZED: BatchHandler(ship_authorised),
    topics.PAYMENT_REFUNDED: on_payment_refunded,
    topics.INVENTORY_RELEASED: on_inventory_released,
    topics.RETRY_REQUESTED: on_retry_requested,
    topics.COMPENSATION_REQUESTED: on_compensation_requested,
    topics.PAYMENT_FAILED: on_payment_failed,
}

# Shipping is the saga's last step (ConsumerSpec.lanes).
SAGA_LANE = frozenset({topics.PAYMENT_AUTHORIZED})
