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
the order; a payment retry is refused once a release was asked for.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from orders.models import Order
from shopsite.events import lifecycle, topics
from shopsite.events.envelope import Event
from shopsite.events.tasks import publish_soon
from shopsite.events.unit_of_work import UnitOfWork, unit_of_work

ALIAS = "order_service"

# A release is considered only where no shipment can be on its way: the payment failed
# (and no retry is allowed after the release), or it was refunded (shipping cancels).
RELEASABLE_STATUSES = frozenset({lifecycle.PAYMENT_FAILED, lifecycle.REFUNDED})


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
        uow.on_commit(lambda: publish_soon(ALIAS))
    order.history, order.updated_at = locked.history, locked.updated_at
    return event


def _record(order: Order, event: Event, uow: UnitOfWork) -> None:
    """Into the history now, so the next request sees it; consuming the event later is a duplicate."""
    order.history, _ = lifecycle.insert_entry(order.history, lifecycle.entry_for(event))
    order.updated_at = event.timestamp
    order.save(using=uow.alias, update_fields=["history", "updated_at"])


def _check(order: Order, event_type: str, payload: dict[str, Any]) -> None:
    if event_type == topics.RETRY_REQUESTED and payload.get("step") == "payment":
        if settings.AUTO_COMPENSATION:
            raise Refused("payment retry refused: automatic compensation is on, a failed payment is final "
                          "(its stock is released)")
        if _release_requests(order.history):
            raise Refused("payment retry refused: a release of the order's stock was requested")
    elif event_type == topics.COMPENSATION_REQUESTED and payload.get("action") == "releaseInventory":
        if _outstanding_payment_retries(order.history):
            raise Refused("release refused: a payment retry is still outstanding (it may authorise and ship "
                          "the order); wait for its outcome")
        if order.status not in RELEASABLE_STATUSES:
            raise Refused(f"release refused: the order is {order.status}; stock is released only after the "
                          f"payment failed or was refunded (refund the payment first)")


def _release_requests(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in history if e["type"] == topics.COMPENSATION_REQUESTED
            and (e.get("details") or {}).get("action") == "releaseInventory"]


def _outstanding_payment_retries(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Payment retries without an answer yet (PaymentAuthorized / PaymentFailed / RequestRefused caused by them)."""
    answered = {e.get("causationId") for e in history}
    return [e for e in history if e["type"] == topics.RETRY_REQUESTED
            and (e.get("details") or {}).get("step") == "payment" and e["eventId"] not in answered]


def request_retry(order: Order, step: str, operator: str) -> Event:
    return request(order, topics.RETRY_REQUESTED, {"step": step}, operator)


def request_compensation(order: Order, action: str, operator: str) -> Event:
    return request(order, topics.COMPENSATION_REQUESTED, {"action": action}, operator)
