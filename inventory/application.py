"""The inventory service's application layer: what its JSON views, the dashboard and the admin call.

Operator changes to stock (restock) and the queries operators make, over the
inventory service's own models (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field

from inventory.models import Reservation, Stock
from shopsite.services import BY_NAME

ALIAS = BY_NAME["inventory"].alias


class SetStock(BaseModel):
    """The body of PUT /api/ops/stock/{sku}, and of the dashboard's stock form."""

    model_config = ConfigDict(extra="forbid")
    available: int = Field(ge=0, le=1_000_000_000)


def set_available(sku: str, available: int) -> Stock:
    """Set the units available to reserve; units already reserved by orders are untouched."""
    now = datetime.now(timezone.utc)
    row, _ = Stock.objects.using(ALIAS).update_or_create(
        sku=sku, defaults={"available": available, "updated_at": now},
        create_defaults={"available": available, "reserved": 0, "updated_at": now},
    )
    return row


def set_stock(sku: str, body: SetStock) -> Stock:
    return set_available(sku, body.available)


def _natural(sku: str) -> tuple:
    """SKU-2 before SKU-10."""
    prefix, _, number = sku.rpartition("-")
    return (prefix, int(number)) if number.isdigit() else (sku, -1)


def all_stock() -> list[Stock]:
    return sorted(Stock.objects.using(ALIAS).all(), key=lambda s: _natural(s.sku))


def find_reservation(order_id: str) -> Reservation | None:
    return Reservation.objects.using(ALIAS).filter(pk=order_id).first()
