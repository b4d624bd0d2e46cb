"""Time series for the dashboard's charts, from plain rows (pure: no database, no clock).

Buckets are whole UTC minutes; the window ends with the minute in progress.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from orders import lifecycle

SHIPPED, FAILED, REFUNDED, IN_FLIGHT = "shipped", "failed", "refunded", "in flight"
OUTCOMES: tuple[str, ...] = (SHIPPED, FAILED, REFUNDED, IN_FLIGHT)


def outcome(status: str) -> str:
    if status == lifecycle.SHIPPED:
        return SHIPPED
    if status == lifecycle.REFUNDED:
        return REFUNDED
    if status in lifecycle.FAILED_STATUSES:
        return FAILED
    return IN_FLIGHT


def minute(at: datetime) -> datetime:
    return at.astimezone(timezone.utc).replace(second=0, microsecond=0)


@dataclass(frozen=True)
class Window:
    """The last `minutes` whole minutes up to and including the one `now` is in."""

    now: datetime
    minutes: int

    @property
    def first(self) -> datetime:
        return minute(self.now) - timedelta(minutes=self.minutes - 1)

    @property
    def buckets(self) -> list[datetime]:
        return [self.first + timedelta(minutes=i) for i in range(self.minutes)]

    def index(self, at: datetime) -> int | None:
        offset = int((minute(at) - self.first).total_seconds() // 60)
        return offset if 0 <= offset < self.minutes else None


def orders_per_minute(window: Window, counts: Iterable[tuple[datetime, str, int]]) -> dict[str, list[int]]:
    """(minute, current status, orders) rows -> orders per minute for each outcome."""
    result = {name: [0] * window.minutes for name in OUTCOMES}
    for at, status, n in counts:
        index = window.index(at)
        if index is not None:
            result[outcome(status)][index] += n
    return result


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_per_minute(window: Window, samples: Iterable[tuple[datetime, float]],
                       quantiles: Sequence[float] = (0.5, 0.95)) -> dict[float, list[float | None]]:
    """(minute placed, seconds to SHIPPED) samples -> each quantile per minute (None: no order shipped)."""
    per_bucket: defaultdict[int, list[float]] = defaultdict(list)
    for at, duration in samples:
        index = window.index(at)
        if index is not None:
            per_bucket[index].append(duration)
    return {q: [percentile(per_bucket[i], q) if per_bucket.get(i) else None for i in range(window.minutes)]
            for q in quantiles}


def seconds_between(timeline: Sequence[dict], first: str, then: str) -> float | None:
    """Event-time seconds from the first `first` entry to the first `then` entry of a timeline."""
    start = next((e["at"] for e in timeline if e["type"] == first), None)
    end = next((e["at"] for e in timeline if e["type"] == then), None)
    if start is None or end is None:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
