"""Typed payloads of every event, checked on produce and on consume.

Money is a Decimal inside the system and a JSON number on the wire: the
seed's payloads carry numbers, and a float with at most two decimals
round-trips exactly through Decimal(str(x)).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, WithJsonSchema

from shopsite.events import topics

Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2),
    PlainSerializer(lambda d: float(d), return_type=float, when_used="json"),
    # What the wire carries: a number in cents precision (the API schema says so too).
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 999_999_999_999.99, "multipleOf": 0.01}),
]
OrderId = Annotated[str, Field(min_length=1, max_length=64)]
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class Payload(BaseModel):
    # Unknown fields are an error: a producer that sends them is out of
    # contract and we would rather dead-letter than silently drop data.
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineItem(Payload):
    sku: Sku
    qty: int = Field(gt=0, le=10_000)


class OrderCreated(Payload):
    orderId: OrderId
    items: list[LineItem] = Field(min_length=1, max_length=100)
    total: Money


class InventoryReserved(Payload):
    orderId: OrderId
    reservedItems: list[LineItem] = Field(min_length=1)


class InventoryFailed(Payload):
    orderId: OrderId
    reason: str = Field(min_length=1, max_length=500)


class PaymentAuthorized(Payload):
    orderId: OrderId
    amount: Money
    authId: str = Field(min_length=1, max_length=64)


class PaymentFailed(Payload):
    orderId: OrderId
    reason: str = Field(min_length=1, max_length=500)


class OrderShipped(Payload):
    orderId: OrderId
    carrier: str = Field(min_length=1, max_length=64)
    trackingId: str = Field(min_length=1, max_length=64)


class ShippingFailed(Payload):
    orderId: OrderId
    reason: str = Field(min_length=1, max_length=500)


class PaymentRefunded(Payload):
    orderId: OrderId
    amount: Money
    refundId: str = Field(min_length=1, max_length=64)


class RetryRequested(Payload):
    orderId: OrderId
    step: Literal["inventory", "payment", "shipping"]


class CompensationRequested(Payload):
    orderId: OrderId
    action: Literal["releaseInventory", "refundPayment"]


class DeadLetter(Payload):
    # The seed's fields, plus where the message came from so it can be replayed.
    model_config = ConfigDict(extra="allow", frozen=True)
    originalType: str
    originalEventId: str
    orderId: str | None = None
    error: str
    payload: Any = None


class InventoryReleased(Payload):
    """Reserved units returned to available (compensation)."""

    orderId: OrderId
    releasedItems: list[LineItem] = Field(min_length=1)


class RequestRefused(Payload):
    """An operator's retry or compensation that the owning service did not apply, and why."""

    orderId: OrderId
    request: Literal["retry", "compensation"]
    step: Literal["inventory", "payment", "shipping"] | None = None
    action: Literal["releaseInventory", "refundPayment"] | None = None
    reason: str = Field(min_length=1, max_length=500)
    requestEventId: str


class ShipmentCancelled(Payload):
    """Shipping will never ship this order (refunded, or its stock is being released): the stock may go back."""

    orderId: OrderId
    reason: str = Field(min_length=1, max_length=500)


PAYLOAD_TYPES: dict[str, type[Payload]] = {
    topics.ORDER_CREATED: OrderCreated,
    topics.INVENTORY_RESERVED: InventoryReserved,
    topics.INVENTORY_FAILED: InventoryFailed,
    topics.PAYMENT_AUTHORIZED: PaymentAuthorized,
    topics.PAYMENT_FAILED: PaymentFailed,
    topics.ORDER_SHIPPED: OrderShipped,
    topics.SHIPPING_FAILED: ShippingFailed,
    topics.PAYMENT_REFUNDED: PaymentRefunded,
    topics.RETRY_REQUESTED: RetryRequested,
    topics.COMPENSATION_REQUESTED: CompensationRequested,
    topics.DEAD_LETTER: DeadLetter,
    topics.INVENTORY_RELEASED: InventoryReleased,
    topics.REQUEST_REFUSED: RequestRefused,
    topics.SHIPMENT_CANCELLED: ShipmentCancelled,
}
assert set(PAYLOAD_TYPES) == set(topics.ALL_EVENT_TYPES)


class UnknownEventType(ValueError):
    pass


def payload_model(event_type: str) -> type[Payload]:
    try:
        return PAYLOAD_TYPES[event_type]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r}") from None


def validate_payload(event_type: str, data: Any) -> Payload:
    """Raise UnknownEventType or pydantic.ValidationError."""
    return payload_model(event_type).model_validate(data)


def error_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors reduced to what a client can act on."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
