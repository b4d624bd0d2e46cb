"""Which operator buttons make sense for an order, derived from its timeline."""

from __future__ import annotations

from dataclasses import dataclass

from orders import lifecycle
from shopsite.events import topics


@dataclass(frozen=True)
class Action:
    kind: str  # "retry" | "compensate"
    value: str  # step or action name
    label: str
    enabled: bool
    why: str  # shown as a tooltip: why it is (not) available


def available_actions(status: str, timeline: list[dict]) -> list[Action]:
    types = {e["type"] for e in timeline}
    reserved = topics.INVENTORY_RESERVED in types and topics.INVENTORY_RELEASED not in types
    authorised = topics.PAYMENT_AUTHORIZED in types and topics.PAYMENT_REFUNDED not in types
    # The order service sends a release only after the payment failed or was refunded (README, failure handling).
    releasable = reserved and status in (lifecycle.PAYMENT_FAILED, lifecycle.REFUNDED)
    # ... and a refund only once shipping failed or shipped: not while it may be shipping.
    refundable = authorised and status in (lifecycle.SHIPPING_FAILED, lifecycle.SHIPPED)

    def retry(step: str, failed_status: str) -> Action:
        ok = status == failed_status
        return Action("retry", step, f"Retry {step}", ok,
                      f"{step} failed" if ok else f"only when the order is {failed_status}")

    return [
        retry("inventory", lifecycle.INVENTORY_FAILED),
        retry("payment", lifecycle.PAYMENT_FAILED),
        retry("shipping", lifecycle.SHIPPING_FAILED),
        Action("compensate", "refundPayment", "Refund payment", refundable,
               "returns exactly the authorised amount" if refundable
               else "wait for shipping's outcome: the order may be shipping" if authorised
               else "no unrefunded authorisation"),
        Action("compensate", "releaseInventory", "Release inventory", releasable,
               "returns the reserved units to stock" if releasable
               else "refund the payment first: the order may be shipping" if reserved and authorised
               else "nothing reserved to release (or already shipped)"),
    ]
