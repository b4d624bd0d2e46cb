"""Operator requests on an order: retry a failed step, or compensate.

The request is an event (ops.RetryRequested.v1 / ops.CompensationRequested.v1)
written through the order service's outbox; the service that owns the step
decides whether it applies and answers with the step's outcome or with
ops.RequestRefused.v1. Nothing here calls another service.

The order service is the one entry point of these requests, so it is where
a payment retry and a stock release are kept apart (docs/architecture.md
section 10, rule 6): each request locks the order row and is recorded in
its history in the same transaction, so the next request sees it. A
release is refused while a payment retry may still authorise (and ship)
the order, a payment retry once a release was asked for; likewise a
refund while shipping may be shipping the order (a shipping retry
outstanding, or no shipping outcome yet), a shipping retry once a refund
was asked for.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from orders.models import Order
from orders import lifecycle
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork, unit_of_work
from shopsite.services import BY_NAME

ALIAS = BY_NAME["orders"].alias

# A release is considered only where no shipment can be on its way: the payment failed
# (and no retry is allowed after the release), or it was refunded (shipping cancels).
RELEASABLE_STATUSES = frozenset({lifecycle.PAYMENT_FAILED, lifecycle.REFUNDED})
# A refund is sent only where shipping cannot be shipping the order right now: it failed
# (and no shipping retry is allowed after the refund), or it shipped (a refund after
# delivery), or it was refunded already (payment answers "already refunded").
REFUNDABLE_STATUSES = frozenset({lifecycle.SHIPPING_FAILED, lifecycle.SHIPPED, lifecycle.REFUNDED})


class Refused(Exception):
    """The order service will not send this request; the reason is for the operator (HTTP 409)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def request(order: Order, event_type: str, payload: dict, operator: str) -> Event:
    with unit_of_work(ALIAS) as uow:
        locked = Order.objects.using(ALIAS).select_for_update().get(pk=order.order_id)
        _check(locked, event_type, payload)
        last = locked.history[-1]["eventId"] if locked.history else None
        # Caused by the order's latest event, so timelines place the request after what prompted it.
        event = uow.emit_new(event_type, {"orderId": locked.order_id, **payload},
                             correlation_id=locked.correlation_id, causation_id=last,
                             headers={"operator": operator})
        _record(locked, event, uow)
    order.history, order.updated_at = locked.history, locked.updated_at
    return event


def _record(order: Order, event: Event, uow: UnitOfWork) -> None:
    """Into the history now, so the next request sees it; consuming the event later is a duplicate."""
    order.history, _ = lifecycle.insert_entry(order.history, lifecycle.entry_for(event))
    order.updated_at = event.timestamp
    order.save(using=uow.alias, update_fields=["history", "updated_at"])


def _check(order: Order, event_type: str, payload: dict[str, Any]) -> None:
    """Refuse a request that could race one already sent (the order row is locked)."""
    if event_type == topics.RETRY_REQUESTED:
        step = payload.get("step")
        if step in ("payment", "shipping") and settings.AUTO_COMPENSATION:
            raise Refused(f"{step} retry refused: automatic compensation is on, a failed {step} is final "
                          f"(the order is being compensated)")
        if step == "payment" and _requests(order.history, "action", "releaseInventory"):
            raise Refused("payment retry refused: a release of the order's stock was requested")
        if step == "shipping" and _requests(order.history, "action", "refundPayment"):
            raise Refused("shipping retry refused: a refund of the order's payment was requested")
    elif payload.get("action") == "releaseInventory":
        if _outstanding_retries(order.history, "payment"):
            raise Refused("release refused: a payment retry is still outstanding (it may authorise and ship "
                          "the order); wait for its outcome")
        if order.status not in RELEASABLE_STATUSES:
            raise Refused(f"release refused: the order is {order.status}; stock is released only after the "
                          f"payment failed or was refunded (refund the payment first)")
    elif payload.get("action") == "refundPayment":
        if _outstanding_retries(order.history, "shipping"):
            raise Refused("refund refused: a shipping retry is still outstanding (it may ship the order); "
                          "wait for its outcome")
        if order.status not in REFUNDABLE_STATUSES:
            raise Refused(f"refund refused: the order is {order.status}; a payment is refunded only once "
                          f"shipping failed or the order shipped (it may be shipping now)")


def _requests(history: list[dict[str, Any]], field: str, value: str) -> list[dict[str, Any]]:
    """Operator requests in the history whose step or action is `value`."""
    kinds = (topics.RETRY_REQUESTED, topics.COMPENSATION_REQUESTED)
    return [e for e in history if e["type"] in kinds and (e.get("details") or {}).get(field) == value]


def _outstanding_retries(history: list[dict[str, Any]], step: str) -> list[dict[str, Any]]:
    """Retries of `step` without an answer yet (the step's outcome or a RequestRefused, caused by the retry)."""
    answered = {e.get("causationId") for e in history}
    return [e for e in _requests(history, "step", step) if e["eventId"] not in answered]


def request_retry(order: Order, step: str, operator: str) -> Event:
    return request(order, topics.RETRY_REQUESTED, {"step": step}, operator)


def request_compensation(order: Order, action: str, operator: str) -> Event:
    return request(order, topics.COMPENSATION_REQUESTED, {"action": action}, operator)
