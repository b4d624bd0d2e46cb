from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone

from shipping.models import Shipment
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork

CARRIERS = ("DHL", "UPS", "FedEx", "PostNL")


def carrier_for(order_id: str) -> str:
    """Spread orders over carriers deterministically (same order, same carrier)."""
    return CARRIERS[hashlib.sha256(order_id.encode()).digest()[0] % len(CARRIERS)]


def on_payment_authorized(event: Event, uow: UnitOfWork) -> None:
    if Shipment.objects.using(uow.alias).filter(pk=event.order_id, status=Shipment.SHIPPED).exists():
        return  # shipped already: one order never ships twice
    now = datetime.now(timezone.utc)
    carrier = carrier_for(event.order_id)
    tracking_id = f"{carrier[:3].upper()}{uuid.uuid4().hex[:16].upper()}"
    Shipment.objects.using(uow.alias).update_or_create(
        order_id=event.order_id,
        defaults={"correlation_id": event.correlation_id, "status": Shipment.SHIPPED, "carrier": carrier,
                  "tracking_id": tracking_id, "reason": "", "updated_at": now},
        create_defaults={"correlation_id": event.correlation_id, "status": Shipment.SHIPPED, "carrier": carrier,
                         "tracking_id": tracking_id, "created_at": now, "updated_at": now},
    )
    uow.emit_new(topics.ORDER_SHIPPED, {"orderId": event.order_id, "carrier": carrier, "trackingId": tracking_id},
                 cause=event)


HANDLERS = {topics.PAYMENT_AUTHORIZED: on_payment_authorized}
