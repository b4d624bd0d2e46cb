"""The read model's application layer: the queries its JSON views and the dashboard make, and the replay command.

Plain functions over the read model's own tables; callers get rows or plain
values, never a queryset to extend, so what is asked of the read model's
database is all written here (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import Count
from django.db.models.functions import ExtractHour, ExtractMinute
from pydantic import BaseModel, ConfigDict

from orders import lifecycle
from readmodel import deadletters
from readmodel.models import DeadLetter, OrderProjection
from readmodel.pagination import page
from shopsite.events.envelope import Event
from shopsite.services import BY_NAME

ALIAS = BY_NAME["readmodel"].alias

MAX_REPLAYS = deadletters.MAX_REPLAYS
ReplayRefused = deadletters.ReplayRefused
InvalidCorrection = deadletters.InvalidCorrection


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: dict[str, Any] | None = None  # a corrected envelope to publish instead of the original


# --- orders -------------------------------------------------------------------------

def orders_page(cursor: str | None, limit: int, status: str | None = None,
                id_prefix: str | None = None) -> tuple[list[OrderProjection], str | None]:
    """Newest first, after `cursor`: (rows, next cursor or None). ValueError for a cursor not issued here."""
    rows = OrderProjection.objects.using(ALIAS).all()
    if status:
        rows = rows.filter(current_status=status)
    if id_prefix:
        rows = rows.filter(order_id__startswith=id_prefix)
    return page(rows, cursor, limit)


def find_order(order_id: str) -> OrderProjection | None:
    return OrderProjection.objects.using(ALIAS).filter(pk=order_id).first()


def count_by_status() -> dict[str, int]:
    """Orders per current status, every status of the lifecycle present (0 when none)."""
    projections = OrderProjection.objects.using(ALIAS)
    found = {row["current_status"]: row["n"] for row in
             projections.values("current_status").annotate(n=Count("pk")).order_by()}
    return {status: found.get(status, 0) for status in lifecycle.STATUSES}


def recent_outcomes(since: datetime, limit: int) -> list[tuple[str, list[dict]]]:
    """(current status, timeline) of the newest orders placed since `since`, at most `limit`."""
    return list(OrderProjection.objects.using(ALIAS).filter(created_at__gte=since).order_by("-created_at")
                .values_list("current_status", "timeline")[:limit])


def count_by_clock_minute(since: datetime) -> list[tuple[int, int, str, int]]:
    """(hour, minute, status, orders) of orders placed since `since`, counted by the database.

    Grouped by hour and minute of the clock rather than a truncated
    timestamp: every backend has those ($dateTrunc is missing from mongomock).
    """
    rows = (OrderProjection.objects.using(ALIAS).filter(created_at__gte=since)
            .annotate(hour=ExtractHour("created_at"), minute=ExtractMinute("created_at"))
            .values("hour", "minute", "current_status").annotate(n=Count("pk")).order_by())
    return [(row["hour"], row["minute"], row["current_status"], row["n"]) for row in rows]


def completed_timelines(ranges: Iterable[tuple[datetime, datetime | None, int]]) -> list[tuple[datetime, list[dict]]]:
    """(created at, timeline) of shipped (or since refunded) orders, newest first, per (start, end, limit) range."""
    completed = (OrderProjection.objects.using(ALIAS)
                 .filter(current_status__in=[lifecycle.SHIPPED, lifecycle.REFUNDED]).order_by("-created_at"))
    result: list[tuple[datetime, list[dict]]] = []
    for start, end, limit in ranges:
        part = completed.filter(created_at__gte=start)
        if end is not None:
            part = part.filter(created_at__lt=end)
        result += list(part[:limit].values_list("created_at", "timeline"))
    return result


# --- dead letters -------------------------------------------------------------------

def dead_letters(limit: int, status: str | None = None) -> tuple[list[DeadLetter], int]:
    """Newest first, at most `limit`, and how many there are in all."""
    rows = DeadLetter.objects.using(ALIAS).order_by("-created_at", "-id")
    if status:
        rows = rows.filter(status=status)
    return list(rows[:limit]), rows.count()


def pending_dead_letters() -> int:
    return DeadLetter.objects.using(ALIAS).filter(status=DeadLetter.PENDING).count()


def known_orders(order_ids: Iterable[str]) -> set[str]:
    """Which of these ids are orders in the read model (a poison message's key can be anything)."""
    ids = {i for i in order_ids if i}
    return set(OrderProjection.objects.using(ALIAS).filter(pk__in=ids).values_list("pk", flat=True))


def replay_dead_letter(letter_id: str, corrected: dict[str, Any] | None = None) -> Event:
    """Re-publish a dead letter's event (or an operator's corrected copy); see readmodel/deadletters.py."""
    return deadletters.replay(letter_id, corrected)
