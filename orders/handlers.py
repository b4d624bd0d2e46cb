"""The order service follows the saga: each downstream event moves the order.

History keeps every event (with its own timestamp) in causal order; status
is the state machine folded over that history, so late or out-of-order
events land in the right place and can never move the order backwards.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from django.db import transaction

from orders.models import Order
from shopsite.events import lifecycle, metrics, topics
from shopsite.events.consumer import PermanentHandlerError
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def record_event(event: Event, uow: UnitOfWork) -> None:
    # Locked: events of one order arrive on different topics, so with several worker
    # processes two of them can update this history at once (a lost update otherwise).
    order = Order.objects.using(uow.alias).select_for_update().filter(pk=event.order_id).first()
    if order is None:
        raise PermanentHandlerError(f"no order {event.order_id} in the order service")
    history, added = lifecycle.insert_entry(order.history, lifecycle.entry_for(event))
    if not added:
        return
    folded = lifecycle.fold(history)
    if event.event_id in folded.ignored:
        transaction.on_commit(lambda: metrics.ILLEGAL_TRANSITIONS.labels("orders", event.type).inc(), using=uow.alias)
        log.warning("event recorded but not applied: illegal transition",
                    extra={"from": order.status, "eventType": event.type})
    previous = order.status
    order.history = history
    order.status = folded.status
    order.updated_at = datetime.now(timezone.utc)
    order.save(using=uow.alias, update_fields=["history", "status", "updated_at"])
    if folded.status != previous and folded.status in lifecycle.TERMINAL_STATUSES:
        reached = _reached_at(history, folded) or event.timestamp
        elapsed = max((reached - order.created_at).total_seconds(), 0.0)
        # Observed only if the transaction commits: a batch that rolls back is
        # replayed, and observing here would count the same saga twice.
        transaction.on_commit(lambda: metrics.SAGA_SECONDS.labels(folded.status).observe(elapsed), using=uow.alias)
        log.info("order reached a terminal status", extra={"status": folded.status, "sagaSeconds": round(elapsed, 3)})


def _reached_at(history: list[dict[str, Any]], folded: lifecycle.Folded) -> datetime | None:
    """Event time of the entry that moved the order into its current status.

    Not necessarily the event being handled: when events arrive out of causal
    order, the late one completes the chain and an earlier-stamped entry
    (e.g. OrderShipped) is the one that reached the status.
    """
    for entry in reversed(history):
        transition = lifecycle.TRANSITIONS.get(entry["type"])
        if transition and transition[1] == folded.status and entry["eventId"] not in folded.ignored:
            return datetime.fromisoformat(entry["at"])
    return None


HANDLERS = {
    event_type: record_event
    for event_type in (
        topics.INVENTORY_RESERVED,
        topics.INVENTORY_FAILED,
        topics.PAYMENT_AUTHORIZED,
        topics.PAYMENT_FAILED,
        topics.ORDER_SHIPPED,
        topics.SHIPPING_FAILED,
        topics.PAYMENT_REFUNDED,
        topics.RETRY_REQUESTED,
        topics.COMPENSATION_REQUESTED,
        topics.INVENTORY_RELEASED,
        topics.REQUEST_REFUSED,
    )
}
