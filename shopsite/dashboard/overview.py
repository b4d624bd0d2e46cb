"""What operators glance at: orders per status, recent saga outcomes and speed, backlogs."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from django.db.models import Count

from readmodel.models import DeadLetter, OrderProjection
from orders import lifecycle
from shopsite.events import topics
from shopsite.events.models import OutboxMessage
from shopsite.services import BY_NAME, SERVICES

READ = BY_NAME["readmodel"].alias
WINDOW = timedelta(minutes=15)
SAMPLE_LIMIT = 5000  # newest orders looked at for timings; counts per status are never capped


@dataclass
class Overview:
    counts: dict[str, int]
    total: int
    window_minutes: int
    recent: int = 0
    shipped: int = 0
    failed: int = 0
    completion_rate: float | None = None
    median_seconds: float | None = None
    p95_seconds: float | None = None
    outbox_backlog: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0

    @property
    def backlog_total(self) -> int:
        return sum(self.outbox_backlog.values())


def _at(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["at"])


def time_to_shipped(timeline: list[dict]) -> float | None:
    created = next((e for e in timeline if e["type"] == topics.ORDER_CREATED), None)
    shipped = next((e for e in timeline if e["type"] == topics.ORDER_SHIPPED), None)
    if created is None or shipped is None:
        return None
    return (_at(shipped) - _at(created)).total_seconds()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def compute(now: datetime | None = None) -> Overview:
    now = now or datetime.now(timezone.utc)
    projections = OrderProjection.objects.using(READ)
    by_status = {row["current_status"]: row["n"] for row in
                 projections.values("current_status").annotate(n=Count("pk")).order_by()}
    counts = {status: by_status.get(status, 0) for status in lifecycle.STATUSES}
    overview = Overview(counts=counts, total=sum(counts.values()), window_minutes=int(WINDOW.total_seconds() // 60))

    recent = list(projections.filter(created_at__gte=now - WINDOW).order_by("-created_at")
                  .values_list("current_status", "timeline")[:SAMPLE_LIMIT])
    overview.recent = len(recent)
    overview.shipped = sum(1 for status, _ in recent if status == lifecycle.SHIPPED)
    overview.failed = sum(1 for status, _ in recent if status in lifecycle.FAILED_STATUSES)
    if recent:
        overview.completion_rate = overview.shipped / len(recent)
    durations = [d for _, timeline in recent if (d := time_to_shipped(timeline)) is not None]
    if durations:
        overview.median_seconds = statistics.median(durations)
        overview.p95_seconds = p95(durations)

    overview.outbox_backlog = {
        s.name: OutboxMessage.objects.using(s.alias).filter(dispatched=False).count() for s in SERVICES
    }
    overview.dead_letters = DeadLetter.objects.using(READ).filter(status=DeadLetter.PENDING).count()
    return overview
