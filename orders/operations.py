"""Operator requests on an order: retry a failed step, or compensate.

The request is an event (ops.RetryRequested.v1 / ops.CompensationRequested.v1)
written through the order service's outbox; the service that owns the step
decides whether it applies and answers with the step's outcome or with
ops.RequestRefused.v1. Nothing here calls another service.
"""

from __future__ import annotations

from orders.models import Order
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import unit_of_work
from shopsite.services import BY_NAME

ALIAS = BY_NAME["orders"].alias


def request(order: Order, event_type: str, payload: dict, operator: str) -> Event:
    last = order.history[-1]["eventId"] if order.history else None
    with unit_of_work(ALIAS) as uow:
        # Caused by the order's latest event, so timelines place the request after what prompted it.
        event = uow.emit_new(event_type, {"orderId": order.order_id, **payload},
                             correlation_id=order.correlation_id, causation_id=last,
                             headers={"operator": operator})
    return event


def request_retry(order: Order, step: str, operator: str) -> Event:
    return request(order, topics.RETRY_REQUESTED, {"step": step}, operator)


def request_compensation(order: Order, action: str, operator: str) -> Event:
    return request(order, topics.COMPENSATION_REQUESTED, {"action": action}, operator)
