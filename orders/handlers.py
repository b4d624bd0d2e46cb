"""The order service follows the saga: each downstream event moves the order.

History keeps every event (with its own timestamp) in causal order; status
is the state machine folded over that history, so late or out-of-order
events land in the right place and can never move the order backwards.
A consumed batch is recorded set-based: one locked load of the orders it
touches, every event applied in memory in offset order, one bulk write.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from orders import lifecycle
from orders.models import Order
from shopsite.events import metrics, topics
from shopsite.events.consumer import BatchHandler, Handler, PermanentHandlerError, event_log_context
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def record_events(events: list[Event], uow: UnitOfWork) -> None:
    """Record a run of downstream events: one load of the orders they touch, one bulk write."""
    # Locked: events of one order arrive on different topics, so with several worker
    # processes two of them can update this history at once (a lost update otherwise).
    orders = uow.locked(Order, {e.order_id for e in events})
    changed: dict[str, Order] = {}
    after_commit: list[Callable[[], None]] = []
    now = datetime.now(timezone.utc)
    for event in events:
        order = orders.get(event.order_id)
        if order is None:
            raise PermanentHandlerError(f"no order {event.order_id} in the order service")
        if _record(order, event, now, after_commit):
            changed[order.order_id] = order
    if changed:
        uow.update_rows(list(changed.values()), ["history", "status", "updated_at"])
    if after_commit:
        # Observed only if the transaction commits: a batch that rolls back is
        # replayed, and observing here would count the same saga twice.
        uow.on_commit(lambda: _run_all(after_commit))


def _record(order: Order, event: Event, now: datetime, after_commit: list[Callable[[], None]]) -> bool:
    """Add the event to the order's history in memory and refold its status; False if already there."""
    history, added = lifecycle.insert_entry(order.history, lifecycle.entry_for(event))
    if not added:
        return False
    folded = lifecycle.fold(history)
    if event.event_id in folded.ignored:
        after_commit.append(metrics.ILLEGAL_TRANSITIONS.labels("orders", event.type).inc)
        with event_log_context(event):
            log.warning("event recorded but not applied: illegal transition",
                        extra={"from": order.status, "eventType": event.type})
    previous = order.status
    order.history = history
    order.status = folded.status
    order.updated_at = now
    if folded.status != previous and folded.status in lifecycle.TERMINAL_STATUSES:
        reached = _reached_at(history, folded) or event.timestamp
        elapsed = max((reached - order.created_at).total_seconds(), 0.0)
        after_commit.append(functools.partial(metrics.SAGA_SECONDS.labels(folded.status).observe, elapsed))
        if log.isEnabledFor(logging.DEBUG):
            with event_log_context(event):
                log.debug("order reached a terminal status",
                          extra={"status": folded.status, "sagaSeconds": round(elapsed, 3)})
    return True


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


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


RECORD = BatchHandler(record_events)
HANDLERS: dict[str, Handler] = {
    event_type: RECORD
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
        topics.SHIPMENT_CANCELLED,
    )
}

# The order service records the saga's outcome; no step waits for it (ConsumerSpec.lanes).
SAGA_LANE: frozenset[str] = frozenset()
