"""The dashboard's pictures: what to draw, from the read model and the metrics.

Orders per minute are counted by the database (grouped by minute and status,
bounded to the window, on the createdAt index); POST->SHIPPED times need the
timeline's event times, so they are read for the window's shipped orders
only, at most about SAMPLE_LIMIT. Lag and backlog come from the metrics,
through pulse. The pictures themselves are drawn by svg.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.utils.safestring import SafeString, mark_safe

import readmodel.application as readmodel
from shopsite.dashboard import pulse, series, svg
from shopsite.dashboard.series import Window
from shopsite.events import topics
from shopsite.services import SERVICES

DEFAULT_MINUTES = 30
MINUTES_CHOICES = (15, 30, 60, 180)
SAMPLE_LIMIT = 5000

OUTCOME_COLORS = {series.SHIPPED: "#2e9d57", series.FAILED: "#d64545", series.REFUNDED: "#8a63d2",
                  series.IN_FLIGHT: "#d9a520"}
SERVICE_COLORS = {"orders": "#2456c7", "inventory": "#c77a24", "payment": "#8a63d2", "shipping": "#2e9d57",
                  "readmodel": "#5b6474"}


def window_minutes(value: str | None) -> int:
    """The ?minutes= choice; anything else (a typo, a huge number) gets the default."""
    try:
        minutes = int(value or DEFAULT_MINUTES)
    except ValueError:
        return DEFAULT_MINUTES
    return minutes if minutes in MINUTES_CHOICES else DEFAULT_MINUTES


def order_counts(window: Window) -> list[tuple[datetime, str, int]]:
    """(minute, status, orders) counted by the database.

    Grouped by hour and minute of the clock rather than a truncated timestamp:
    every backend has those ($dateTrunc is missing from mongomock), and in a
    window shorter than a day they name each minute once.
    """
    assert window.minutes <= 24 * 60
    by_clock = {(at.hour, at.minute): at for at in window.buckets}
    return [(by_clock[key], status, n) for hour, minute, status, n in readmodel.count_by_clock_minute(window.first)
            if (key := (hour, minute)) in by_clock]


def shipped_samples(window: Window, shipped_per_minute: list[int]) -> list[tuple[datetime, float]]:
    """(minute placed, seconds to SHIPPED) of the window's shipped orders, at most about SAMPLE_LIMIT.

    Over the limit, each minute gets its share (newest first within the
    minute), so a busy window still has a point in every minute rather than
    only in its last few.
    """
    if sum(shipped_per_minute) <= SAMPLE_LIMIT:
        ranges = [(window.first, None, SAMPLE_LIMIT)]
    else:
        share = max(1, SAMPLE_LIMIT // window.minutes)
        ranges = [(start, start + timedelta(minutes=1), share)
                  for start, n in zip(window.buckets, shipped_per_minute) if n]
    return [(created, seconds) for created, timeline in readmodel.completed_timelines(ranges)
            if (seconds := series.seconds_between(timeline, topics.ORDER_CREATED, topics.ORDER_SHIPPED)) is not None]


@dataclass(frozen=True)
class Charts:
    """Four SVG fragments, safe to place in a page as they are (svg.py escapes every text it writes)."""

    minutes: int
    throughput: SafeString
    latency: SafeString
    lag: SafeString
    backlog: SafeString
    choices: tuple[int, ...] = MINUTES_CHOICES


def build(now: datetime | None = None, minutes: int = DEFAULT_MINUTES, *, sample: bool = True) -> Charts:
    window = Window(now or datetime.now(timezone.utc), minutes)
    labels = [svg.clock(at) for at in window.buckets]

    per_outcome = series.orders_per_minute(window, order_counts(window))
    throughput = svg.stacked_bars(
        f"Orders per minute by outcome, last {minutes} min (UTC)", labels,
        [svg.Series(name, OUTCOME_COLORS[name], per_outcome[name]) for name in series.OUTCOMES],
        empty="no orders placed in this window")

    shipped = [a + b for a, b in zip(per_outcome[series.SHIPPED], per_outcome[series.REFUNDED])]
    quantiles = series.latency_per_minute(window, shipped_samples(window, shipped))
    latency = svg.lines(
        "POST -> SHIPPED by minute placed", labels,
        [svg.Series("p50", "#2456c7", quantiles[0.5]), svg.Series("p95", "#d64545", quantiles[0.95])],
        empty="no order shipped in this window", fmt=svg.seconds)

    history = pulse.history()
    if sample:
        history.record(pulse.sample_now)
    samples = history.since(window.first.timestamp())
    names = [s.name for s in SERVICES]
    lag = pulse.per_minute(window, samples, lambda s: s.lag, names)
    backlog = pulse.per_minute(window, samples, lambda s: s.backlog, names)
    no_samples = "no samples yet: the history grows while a dashboard is open"
    lag_chart = svg.lines("Consumer lag per service (messages, max per minute)", labels,
                          [svg.Series(n, SERVICE_COLORS[n], lag[n]) for n in names], empty=no_samples, whole=True)
    backlog_chart = svg.lines("Outbox backlog per service (rows, max per minute)", labels,
                              [svg.Series(n, SERVICE_COLORS[n], backlog[n]) for n in names], empty=no_samples, whole=True)
    # svg.py escapes every text it writes, so the fragments go into the page as they are.
    return Charts(minutes, mark_safe(throughput), mark_safe(latency),  # noqa: S308
                  mark_safe(lag_chart), mark_safe(backlog_chart))  # noqa: S308


# --- one order's saga -----------------------------------------------------------------------

LANES = ("orders", "inventory", "payment", "shipping", "ops")
FAILURES = {topics.INVENTORY_FAILED, topics.PAYMENT_FAILED, topics.SHIPPING_FAILED, topics.DEAD_LETTER,
            topics.REQUEST_REFUSED}


def lane_of(event_type: str) -> str:
    """The service that emitted an event, from its type's prefix (order.OrderCreated.v1 -> orders)."""
    prefix = event_type.split(".", 1)[0]
    return {"order": "orders", "inventory": "inventory", "payment": "payment", "shipping": "shipping"}.get(
        prefix, "ops")


def step_of(entry: dict) -> svg.Step:
    event_type = entry["type"]
    name = event_type.split(".")[1] if event_type.count(".") >= 2 else event_type
    tone = "bad" if event_type in FAILURES else "ops" if lane_of(event_type) == "ops" else "ok"
    return svg.Step(lane_of(event_type), name, datetime.fromisoformat(entry["at"]), tone)


def saga(order: dict) -> str:
    """The order's timeline (already in causal order in the read model) as service lanes."""
    return svg.saga_lanes("Saga timeline", LANES, [step_of(e) for e in order.get("timeline", [])])
