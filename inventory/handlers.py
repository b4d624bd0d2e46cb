from __future__ import annotations

import logging
from datetime import datetime, timezone

from inventory import reservations
from inventory.models import Reservation
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.schemas import OrderCreated
from shopsite.events.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def on_order_created(event: Event, uow: UnitOfWork) -> None:
    payload: OrderCreated = event.payload  # type: ignore[assignment]
    if Reservation.objects.using(uow.alias).filter(pk=payload.orderId).exists():
        log.info("order already has a reservation; nothing to do")
        return
    items = [i.model_dump() for i in payload.items]
    outcome = reservations.reserve(uow.alias, items)
    now = datetime.now(timezone.utc)
    Reservation(
        order_id=payload.orderId,
        correlation_id=event.correlation_id,
        items=reservations.merge_lines(items),
        status=Reservation.RESERVED if outcome.reserved else Reservation.FAILED,
        reason=outcome.reason or "",
        created_at=now,
        updated_at=now,
    ).save(using=uow.alias, force_insert=True)
    if outcome.reserved:
        uow.emit_new(topics.INVENTORY_RESERVED, {"orderId": payload.orderId, "reservedItems": outcome.reserved},
                     cause=event)
    else:
        uow.emit_new(topics.INVENTORY_FAILED, {"orderId": payload.orderId, "reason": outcome.reason}, cause=event)


HANDLERS = {topics.ORDER_CREATED: on_order_created}
