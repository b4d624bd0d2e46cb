"""The order service's application layer: what its JSON views, the dashboard and the admin call.

Commands and queries as plain functions over the order service's own models,
and the request bodies they accept, so the API and the dashboard's forms
validate with one model (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field

from orders import commands, lifecycle, operations
from orders.models import Order, public_entry
from orders.writer import GroupWriter
from shopsite.events.envelope import Event
from shopsite.events.schemas import CompensationRequested, LineItem, Money, RetryRequested

# What the order service answers when it will not send an operator's request (HTTP 409).
Refused = operations.Refused

ALIAS = commands.ALIAS

IdempotencyConflict = commands.IdempotencyConflict
Placed = commands.Placed


class PlaceOrderRequest(BaseModel):
    """The body of POST /api/orders, and of the dashboard's new-order form."""

    model_config = ConfigDict(extra="forbid")
    items: list[LineItem] = Field(min_length=1, max_length=100)
    total: Money


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: RetryRequested.model_fields["step"].annotation  # type: ignore[valid-type]


class CompensateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: CompensationRequested.model_fields["action"].annotation  # type: ignore[valid-type]


# --- commands -----------------------------------------------------------------------

def place_order(body: PlaceOrderRequest, idempotency_key: str | None = None) -> Placed:
    """Create the order and its OrderCreated event in one transaction."""
    return commands.place(_placement(body, idempotency_key))


async def aplace_order(body: PlaceOrderRequest, idempotency_key: str | None = None) -> Placed:
    """place_order for an async view: through this process's order writer when it has one (a web server),
    else in a transaction of its own on the calling thread (the test client, a WSGI server)."""
    one = _placement(body, idempotency_key)
    if _writer is None:
        return await sync_to_async(commands.place)(one)
    return await _writer.submit(one)


def _placement(body: PlaceOrderRequest, idempotency_key: str | None) -> commands.Placement:
    return commands.placement(body.items, body.total, idempotency_key)


_writer: GroupWriter[commands.Placement] | None = None


def start_order_writer() -> None:
    """Let this process's concurrent POST /api/orders share transactions (orders/writer.py).

    For a web server's process, once, before it serves: from then on
    aplace_order runs on the writer's thread, which the server's event loop
    must keep awaiting.
    """
    global _writer
    if _writer is None:
        _writer = GroupWriter(commands.place_orders_together, max_group=settings.ORDER_GROUP_MAX, alias=ALIAS,
                              name="order-writer")


def request_retry(order: Order, body: RetryBody, operator: str) -> Event:
    """Ask the service owning the step to retry it (an ops.RetryRequested.v1 event)."""
    return operations.request_retry(order, body.step, operator)


def request_compensation(order: Order, body: CompensateBody, operator: str) -> Event:
    """Ask the service owning the action to compensate (an ops.CompensationRequested.v1 event)."""
    return operations.request_compensation(order, body.action, operator)


# --- queries ------------------------------------------------------------------------

def find_order(order_id: str) -> Order | None:
    return Order.objects.using(ALIAS).filter(pk=order_id).first()


def order_document(order_id: str) -> dict[str, Any] | None:
    """The order as the API shows it (GET /api/orders/{id}), or None."""
    order = find_order(order_id)
    return None if order is None else order.as_document()


class NotYetPlaced(LookupError):
    """Asked for an order as of an instant before it was created."""


def order_as_of(order: Order, as_of: datetime) -> dict[str, Any]:
    """The order rebuilt from the events that had happened by `as_of` (event time)."""
    if as_of < order.created_at:
        raise NotYetPlaced(f"order {order.order_id} did not exist at {as_of.isoformat()}")
    entries = [e for e in order.history if datetime.fromisoformat(e["at"]) <= as_of]
    document: dict[str, Any] = order.as_document()
    document.update(
        status=lifecycle.fold(entries).status,
        history=[public_entry(e) for e in entries],
        updatedAt=entries[-1]["at"] if entries else document["createdAt"],
        asOf=as_of.isoformat(),
    )
    return document
