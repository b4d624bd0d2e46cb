"""Reserving stock for orders: each order gets all its lines or nothing.

A StockLedger loads (and locks) the stock rows a batch of orders needs in
one query, moves units in memory order by order, and writes the changed rows
back in one bulk update, inside the consumer's unit of work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from inventory.models import Stock
from shopsite.events.unit_of_work import UnitOfWork


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


class StockLedger:
    """The stock rows of some SKUs, for one transaction: reserve and release in memory, then save once.

    The rows are locked for the transaction where the backend can
    (PostgreSQL, in SKU order so two ledgers never wait on each other in a
    cycle), and SQLite's IMMEDIATE transaction already serialises writers.
    Units only move between available and reserved: their sum per SKU is
    conserved and available never goes below zero.
    """

    def __init__(self, uow: UnitOfWork, skus: Iterable[str]):
        self.uow = uow
        self._rows: dict[str, Stock] = uow.locked(Stock, set(skus))  # type: ignore[assignment]
        self._dirty: set[str] = set()

    def reserve(self, items: list[dict]) -> Outcome:
        """Move the ordered units from available to reserved, or change nothing."""
        lines = merge_lines(items)
        for line in lines:
            row = self._rows.get(line["sku"])
            if row is None:
                return Outcome(None, f"unknown SKU {line['sku']}")
            if row.available < line["qty"]:
                return Outcome(None, f"insufficient stock for {line['sku']}: requested {line['qty']}, "
                                     f"available {row.available}")
        self._move(lines, to_reserved=True)
        return Outcome(lines, None)

    def release(self, lines: list[dict]) -> None:
        """Move exactly these units from reserved back to available."""
        self._move(lines, to_reserved=False)

    def _move(self, lines: list[dict], *, to_reserved: bool) -> None:
        for line in lines:
            row = self._rows[line["sku"]]
            qty = line["qty"] if to_reserved else -line["qty"]
            row.available -= qty
            row.reserved += qty
            self._dirty.add(row.sku)

    def save(self, now: datetime | None = None) -> None:
        if not self._dirty:
            return
        now = now or datetime.now(timezone.utc)
        rows = [self._rows[sku] for sku in sorted(self._dirty)]
        for row in rows:
            row.updated_at = now
        self.uow.update_rows(rows, ["available", "reserved", "updated_at"])
        self._dirty.clear()


def release(uow: UnitOfWork, lines: list[dict]) -> None:
    """One order's release on its own (compensations)."""
    ledger = StockLedger(uow, (line["sku"] for line in lines))
    ledger.release(lines)
    ledger.save()
