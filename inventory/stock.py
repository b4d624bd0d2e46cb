"""Operator changes to stock (restock), shared by the API and the dashboard."""

from __future__ import annotations

from datetime import datetime, timezone

from inventory.models import Stock
from shopsite.services import BY_NAME

ALIAS = BY_NAME["inventory"].alias


def set_available(sku: str, available: int) -> Stock:
    """Set the units available to reserve; units already reserved by orders are untouched."""
    now = datetime.now(timezone.utc)
    row, _ = Stock.objects.using(ALIAS).update_or_create(
        sku=sku, defaults={"available": available, "updated_at": now},
        create_defaults={"available": available, "reserved": 0, "updated_at": now},
    )
    return row


def _natural(sku: str) -> tuple:
    """SKU-2 before SKU-10."""
    prefix, _, number = sku.rpartition("-")
    return (prefix, int(number)) if number.isdigit() else (sku, -1)


def all_stock() -> list[Stock]:
    return sorted(Stock.objects.using(ALIAS).all(), key=lambda s: _natural(s.sku))
