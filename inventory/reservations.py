"""Reserving stock for an order: all lines or nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from inventory.models import Stock


@dataclass(frozen=True)
class Outcome:
    reserved: list[dict] | None  # merged lines when reserved
    reason: str | None  # why not, naming the SKU


def merge_lines(items: list[dict]) -> list[dict]:
    """One line per SKU (an order may list a SKU twice), in first-seen order."""
    totals: Counter[str] = Counter()
    for item in items:
        totals[item["sku"]] += int(item["qty"])
    return [{"sku": sku, "qty": qty} for sku, qty in totals.items()]


def reserve(alias: str, items: list[dict]) -> Outcome:
    """Move the ordered units from available to reserved, or change nothing.

    Called inside the consumer's unit of work: the stock rows are locked for
    the transaction where the backend can (PostgreSQL), and SQLite's
    IMMEDIATE transaction already serialises writers.
    """
    lines = merge_lines(items)
    stock = {s.sku: s for s in Stock.objects.using(alias).select_for_update().filter(sku__in=[l["sku"] for l in lines])}
    for line in lines:
        row = stock.get(line["sku"])
        if row is None:
            return Outcome(None, f"unknown SKU {line['sku']}")
        if row.available < line["qty"]:
            return Outcome(None, f"insufficient stock for {line['sku']}: requested {line['qty']}, available {row.available}")
    now = datetime.now(timezone.utc)
    for line in lines:
        row = stock[line["sku"]]
        row.available -= line["qty"]
        row.reserved += line["qty"]
        row.updated_at = now
    Stock.objects.using(alias).bulk_update(list(stock.values()), ["available", "reserved", "updated_at"])
    return Outcome(lines, None)


def release(alias: str, lines: list[dict]) -> None:
    """Move exactly these units from reserved back to available."""
    stock = {s.sku: s for s in Stock.objects.using(alias).select_for_update().filter(sku__in=[l["sku"] for l in lines])}
    now = datetime.now(timezone.utc)
    for line in lines:
        row = stock[line["sku"]]
        row.reserved -= line["qty"]
        row.available += line["qty"]
        row.updated_at = now
    Stock.objects.using(alias).bulk_update(list(stock.values()), ["available", "reserved", "updated_at"])
