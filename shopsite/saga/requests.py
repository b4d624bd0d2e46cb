"""Operator requests (retry a step, compensate) as the owning service sees them."""

from __future__ import annotations

from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.schemas import CompensationRequested, RetryRequested
from shopsite.events.unit_of_work import UnitOfWork


def is_retry_of(event: Event, step: str) -> bool:
    return isinstance(event.payload, RetryRequested) and event.payload.step == step


def is_compensation(event: Event, action: str) -> bool:
    return isinstance(event.payload, CompensationRequested) and event.payload.action == action


def refuse(uow: UnitOfWork, request: Event, reason: str) -> Event:
    """Answer a request that will not be applied, visibly (it lands in history and timeline)."""
    payload = request.payload
    body: dict = {"orderId": request.order_id, "reason": reason, "requestEventId": request.event_id}
    if isinstance(payload, RetryRequested):
        body.update(request="retry", step=payload.step)
    else:
        body.update(request="compensation", action=payload.action)  # type: ignore[attr-defined]
    return uow.emit_new(topics.REQUEST_REFUSED, body, cause=request)
