"""What operators glance at: orders per status, recent saga outcomes and speed, backlogs.

From the read model's application layer and the processes' metrics only.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import readmodel.application as readmodel
from orders import lifecycle
from shopsite.dashboard import pulse
from shopsite.events import topics
from shopsite.services import SERVICES

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
    counts = readmodel.count_by_status()
    overview = Overview(counts=counts, total=sum(counts.values()), window_minutes=int(WINDOW.total_seconds() // 60))

    recent = readmodel.recent_outcomes(now - WINDOW, SAMPLE_LIMIT)
    overview.recent = len(recent)
    overview.shipped = sum(1 for status, _ in recent if status == lifecycle.SHIPPED)
    overview.failed = sum(1 for status, _ in recent if status in lifecycle.FAILED_STATUSES)
    if recent:
        overview.completion_rate = overview.shipped / len(recent)
    durations = [d for _, timeline in recent if (d := time_to_shipped(timeline)) is not None]
    if durations:
        overview.median_seconds = statistics.median(durations)
        overview.p95_seconds = p95(durations)

    # From the outbox sweeps' gauges (shopsite_outbox_backlog), never by reading other services' databases.
    backlog = pulse.sample_now().backlog
    overview.outbox_backlog = {s.name: int(backlog.get(s.name, 0)) for s in SERVICES}
    overview.dead_letters = readmodel.pending_dead_letters()
    return overview
