"""Shipping: ship authorised orders once; a failed shipment can be retried, a refunded one never ships."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone

from shipping.models import Shipment, ShippingSimulator
from shopsite.events import requests, simulator, topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork

CARRIERS = ("DHL", "UPS", "FedEx", "PostNL")


def carrier_for(order_id: str) -> str:
    """Spread orders over carriers deterministically (same order, same carrier)."""
    return CARRIERS[hashlib.sha256(order_id.encode()).digest()[0] % len(CARRIERS)]


def failure_reason(sim: ShippingSimulator, carrier: str) -> str | None:
    if sim.outage:
        return f"carrier outage: {carrier} is not accepting parcels"
    if simulator.fails(sim.failure_rate):
        return f"{carrier} rejected the parcel (simulated failure rate)"
    return None


def _attempt(shipment: Shipment, uow: UnitOfWork, cause: Event) -> None:
    now = datetime.now(timezone.utc)
    reason = failure_reason(ShippingSimulator.current(uow.alias), shipment.carrier)
    shipment.updated_at = now
    if reason is not None:
        shipment.status, shipment.reason = Shipment.FAILED, reason
        shipment.save(using=uow.alias)
        uow.emit_new(topics.SHIPPING_FAILED, {"orderId": shipment.order_id, "reason": reason}, cause=cause)
        return
    shipment.status, shipment.reason = Shipment.SHIPPED, ""
    shipment.tracking_id = f"{shipment.carrier[:3].upper()}{uuid.uuid4().hex[:16].upper()}"
    shipment.save(using=uow.alias)
    uow.emit_new(topics.ORDER_SHIPPED,
                 {"orderId": shipment.order_id, "carrier": shipment.carrier, "trackingId": shipment.tracking_id},
                 cause=cause)


def on_payment_authorized(event: Event, uow: UnitOfWork) -> None:
    if Shipment.objects.using(uow.alias).filter(pk=event.order_id).exists():
        return  # attempted already (shipped, failed and awaiting a retry, or cancelled): never ship twice
    now = datetime.now(timezone.utc)
    shipment = Shipment(order_id=event.order_id, correlation_id=event.correlation_id, status=Shipment.FAILED,
                        carrier=carrier_for(event.order_id), created_at=now, updated_at=now)
    shipment.save(using=uow.alias, force_insert=True)
    _attempt(shipment, uow, cause=event)


def on_retry_requested(event: Event, uow: UnitOfWork) -> None:
    if not requests.is_retry_of(event, "shipping"):
        return
    shipment = Shipment.objects.using(uow.alias).select_for_update().filter(pk=event.order_id).first()
    if shipment is None or shipment.status != Shipment.FAILED:
        state = shipment.status if shipment else "not attempted yet"
        requests.refuse(uow, event, f"nothing to retry: shipping is {state}")
        return
    _attempt(shipment, uow, cause=event)


def _cancel(event: Event, uow: UnitOfWork, reason: str) -> None:
    """An order that is being compensated must not ship later (e.g. through a shipping retry)."""
    now = datetime.now(timezone.utc)
    shipment = Shipment.objects.using(uow.alias).select_for_update().filter(pk=event.order_id).first()
    if shipment is None:
        Shipment(order_id=event.order_id, correlation_id=event.correlation_id, status=Shipment.CANCELLED,
                 reason=reason, created_at=now, updated_at=now).save(using=uow.alias, force_insert=True)
    elif shipment.status == Shipment.FAILED:
        shipment.status, shipment.reason, shipment.updated_at = Shipment.CANCELLED, reason, now
        shipment.save(using=uow.alias)


def on_payment_refunded(event: Event, uow: UnitOfWork) -> None:
    _cancel(event, uow, "payment refunded")


def on_inventory_released(event: Event, uow: UnitOfWork) -> None:
    _cancel(event, uow, "stock released")


HANDLERS = {
    topics.PAYMENT_AUTHORIZED: on_payment_authorized,
    topics.PAYMENT_REFUNDED: on_payment_refunded,
    topics.INVENTORY_RELEASED: on_inventory_released,
    topics.RETRY_REQUESTED: on_retry_requested,
}
