"""Every event type, and so every topic: one topic per type, named as the type.

The only module that spells these strings; everything else imports the
constants.
"""

from __future__ import annotations

ORDER_CREATED = "order.OrderCreated.v1"
INVENTORY_RESERVED = "inventory.InventoryReserved.v1"
INVENTORY_FAILED = "inventory.InventoryFailed.v1"
PAYMENT_AUTHORIZED = "payment.PaymentAuthorized.v1"
PAYMENT_FAILED = "payment.PaymentFailed.v1"
ORDER_SHIPPED = "shipping.OrderShipped.v1"
SHIPPING_FAILED = "shipping.ShippingFailed.v1"
PAYMENT_REFUNDED = "payment.PaymentRefunded.v1"
RETRY_REQUESTED = "ops.RetryRequested.v1"
COMPENSATION_REQUESTED = "ops.CompensationRequested.v1"
DEAD_LETTER = "ops.DeadLetter.v1"

# Extension events (README, event catalogue): outcomes the seed leaves implicit.
INVENTORY_RELEASED = "inventory.InventoryReleased.v1"
REQUEST_REFUSED = "ops.RequestRefused.v1"
SHIPMENT_CANCELLED = "shipping.ShipmentCancelled.v1"

ALL_EVENT_TYPES: tuple[str, ...] = (
    ORDER_CREATED,
    INVENTORY_RESERVED,
    INVENTORY_FAILED,
    PAYMENT_AUTHORIZED,
    PAYMENT_FAILED,
    ORDER_SHIPPED,
    SHIPPING_FAILED,
    PAYMENT_REFUNDED,
    RETRY_REQUESTED,
    COMPENSATION_REQUESTED,
    DEAD_LETTER,
    INVENTORY_RELEASED,
    REQUEST_REFUSED,
    SHIPMENT_CANCELLED,
)


# The saga's happy path: every order travels these, one after the other.
HAPPY_PATH: frozenset[str] = frozenset({ORDER_CREATED, INVENTORY_RESERVED, PAYMENT_AUTHORIZED, ORDER_SHIPPED})


def topic_for(event_type: str) -> str:
    return event_type


def short_name(event_type: str) -> str:
    """'payment.PaymentAuthorized.v1' -> 'PaymentAuthorized' (for timelines and logs)."""
    parts = event_type.split(".")
    return parts[1] if len(parts) == 3 else event_type
