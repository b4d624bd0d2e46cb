"""Charts as inline SVG, rendered on the server.

No JavaScript and no asset to ship: a chart is a fragment of the page, so
it shows without JavaScript, prints, and a live update is the same htmx
swap the rest of the dashboard uses. Pure functions of plain data; every
text that reaches the markup goes through `escape`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

WIDTH = 600
HEIGHT = 210
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 12, 26, 44

Format = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """One named line (or one layer of stacked bars): a value per x, None where nothing was measured."""

    name: str
    color: str
    values: Sequence[float | None]


def nice_step(span: float, count: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) that cuts `span` into about `count` parts."""
    if span <= 0:
        return 1.0
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def ticks(top: float, count: int = 4, *, whole: bool = False) -> list[float]:
    """Round values from 0 up to at least `top` (the axis grows to the last tick); `whole`: counts, no fractions."""
    step = nice_step(top, count)
    if whole:
        step = max(1.0, step)
    n = max(1, math.ceil(top / step - 1e-9))
    return [round(i * step, 10) for i in range(n + 1)]


def number(value: float) -> str:
    return f"{value:g}" if value < 10_000 else f"{value / 1000:g}k"


def seconds(value: float) -> str:
    """A duration for an axis or a label: 35 ms, 1.2 s, 3.5 min."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.3g} s"
    return f"{value / 60:.3g} min"


def clock(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%H:%M")


def _open(title: str, summary: str, width: int, height: int) -> list[str]:
    return [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}: {escape(summary)}">',
        f"<title>{escape(title)}</title>",
        f'<desc>{escape(summary)}</desc>',
        f'<text class="chart-title" x="{MARGIN_LEFT}" y="16">{escape(title)}</text>',
    ]


@dataclass(frozen=True)
class _Frame:
    """The plot area and the mapping from (bucket index, value) to pixels."""

    buckets: int
    top: float
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def left(self) -> float:
        return MARGIN_LEFT

    @property
    def right(self) -> float:
        return self.width - MARGIN_RIGHT

    @property
    def bottom(self) -> float:
        return self.height - MARGIN_BOTTOM

    @property
    def slot(self) -> float:
        return (self.right - self.left) / max(1, self.buckets)

    def x(self, index: float) -> float:
        """The centre of bucket `index`."""
        return self.left + (index + 0.5) * self.slot

    def y(self, value: float) -> float:
        return self.bottom - (value / self.top) * (self.bottom - MARGIN_TOP) if self.top else self.bottom


def _axes(frame: _Frame, labels: Sequence[str], grid: Sequence[float], fmt: Format) -> list[str]:
    parts = []
    for value in grid:
        y = frame.y(value)
        parts.append(f'<line class="grid" x1="{frame.left}" x2="{frame.right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(value))}</text>')
    every = max(1, math.ceil(len(labels) / 6))
    for index, label in enumerate(labels):
        if index % every == 0 or index == len(labels) - 1:
            parts.append(f'<text class="tick" x="{frame.x(index):.1f}" y="{frame.bottom + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<line class="axis" x1="{frame.left}" x2="{frame.right}" y1="{frame.bottom}" y2="{frame.bottom}"/>')
    return parts


def _last(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def _legend(series: Sequence[Series], frame: _Frame, fmt: Format | None = None) -> list[str]:
    """Colour keys; with `fmt`, each followed by the series' latest value (lines on top of each other stay readable)."""
    parts, x = [], frame.left
    y = frame.height - 8
    for s in series:
        last = _last(s.values) if fmt else None
        text = s.name if last is None or fmt is None else f"{s.name} {fmt(last)}"
        parts.append(f'<rect x="{x:.0f}" y="{y - 9}" width="10" height="10" fill="{escape(s.color)}"/>')
        parts.append(f'<text class="legend" x="{x + 14:.0f}" y="{y}">{escape(text)}</text>')
        x += 24 + 6 * len(text)
    return parts


def _empty(frame: _Frame, message: str) -> str:
    return (f'<text class="empty" x="{(frame.left + frame.right) / 2:.0f}" y="{(MARGIN_TOP + frame.bottom) / 2:.0f}" '
            f'text-anchor="middle">{escape(message)}</text>')


def stacked_bars(title: str, labels: Sequence[str], layers: Sequence[Series], *,
                 empty: str = "no data yet", fmt: Format = number) -> str:
    """One bar per label, the layers stacked bottom-up in the order given (counts: whole-number axis)."""
    totals = [sum(layer.values[i] or 0 for layer in layers) for i in range(len(labels))]
    grid = ticks(max(totals, default=0) or 1, whole=True)
    frame = _Frame(len(labels), grid[-1])
    summary = ", ".join(f"{layer.name} {number(sum(v or 0 for v in layer.values))}" for layer in layers)
    parts = _open(title, summary or empty, frame.width, frame.height) + _axes(frame, labels, grid, fmt)
    bar = max(1.0, frame.slot * 0.8)
    for index, label in enumerate(labels):
        base = 0.0
        for layer in layers:
            value = layer.values[index] or 0
            if value <= 0:
                continue
            y0, y1 = frame.y(base), frame.y(base + value)
            parts.append(
                f'<rect class="bar" x="{frame.x(index) - bar / 2:.1f}" y="{y1:.1f}" width="{bar:.1f}" '
                f'height="{max(0.5, y0 - y1):.1f}" fill="{escape(layer.color)}">'
                f"<title>{escape(label)} {escape(layer.name)}: {escape(fmt(value))}</title></rect>")
            base += value
    if not any(totals):
        parts.append(_empty(frame, empty))
    parts += _legend(layers, frame)
    parts.append("</svg>")
    return "".join(parts)


def lines(title: str, labels: Sequence[str], series: Sequence[Series], *,
          empty: str = "no data yet", fmt: Format = number, whole: bool = False) -> str:
    """One polyline per series; a None value breaks the line (nothing measured there)."""
    values = [v for s in series for v in s.values if v is not None]
    grid = ticks(max(values, default=0) or 1, whole=whole)
    frame = _Frame(len(labels), grid[-1])
    summary = ", ".join(f"{s.name} last {fmt(last)}" for s in series if (last := _last(s.values)) is not None)
    parts = _open(title, summary or empty, frame.width, frame.height) + _axes(frame, labels, grid, fmt)
    for s in series:
        for run in _runs(s.values):
            points = " ".join(f"{frame.x(i):.1f},{frame.y(v):.1f}" for i, v in run)
            parts.append(f'<polyline class="line" fill="none" stroke="{escape(s.color)}" points="{points}"/>')
            for i, v in run if len(run) < 40 else run[-1:]:
                parts.append(f'<circle cx="{frame.x(i):.1f}" cy="{frame.y(v):.1f}" r="2.5" fill="{escape(s.color)}">'
                             f"<title>{escape(labels[i])} {escape(s.name)}: {escape(fmt(v))}</title></circle>")
    if not values:
        parts.append(_empty(frame, empty))
    parts += _legend(series, frame, fmt)
    parts.append("</svg>")
    return "".join(parts)


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive measured points: [[(index, value), ...], ...]."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        runs.append(current)
    return runs


@dataclass(frozen=True)
class Step:
    """One event on a saga timeline: the lane it happened in and what to call it."""

    lane: str
    label: str
    at: datetime
    tone: str = "ok"  # ok, bad, ops


LANE_HEIGHT = 40
STEP_WIDTH = 118
TONES = {"ok": "#2e9d57", "bad": "#d64545", "ops": "#8a63d2", "info": "#5b6474"}


def saga_lanes(title: str, lanes: Sequence[str], steps: Sequence[Step]) -> str:
    """Swimlanes, one per service, with the steps left to right in causal order.

    Steps sit at equal distances rather than on a time scale: a saga's hops take
    milliseconds while an operator retry may come hours later, and a time
    scale would pile the fast ones on one pixel. The time between two steps is
    written on the arrow joining them.
    """
    label_width = 86
    width = max(WIDTH, label_width + 30 + STEP_WIDTH * len(steps))
    height = MARGIN_TOP + LANE_HEIGHT * len(lanes) + 18
    row = {lane: index for index, lane in enumerate(lanes)}
    first, last = (steps[0].at, steps[-1].at) if steps else (None, None)
    summary = (f"{len(steps)} steps over {seconds((last - first).total_seconds())}"
               if first and last else "no events yet")
    parts = _open(title, summary, width, height)

    def centre(index: int, step: Step) -> tuple[float, float]:
        return (label_width + 20 + STEP_WIDTH * index + STEP_WIDTH / 2,
                MARGIN_TOP + LANE_HEIGHT * row[step.lane] + LANE_HEIGHT / 2)

    for lane, index in row.items():
        y = MARGIN_TOP + LANE_HEIGHT * index
        parts.append(f'<rect class="lane{" alt" if index % 2 else ""}" x="0" y="{y}" width="{width}" height="{LANE_HEIGHT}"/>')
        parts.append(f'<text class="lane-name" x="8" y="{y + LANE_HEIGHT / 2 + 4}">{escape(lane)}</text>')
    for index in range(1, len(steps)):
        (x0, y0), (x1, y1) = centre(index - 1, steps[index - 1]), centre(index, steps[index])
        gap = (steps[index].at - steps[index - 1].at).total_seconds()
        parts.append(f'<line class="hop" x1="{x0 + 6:.1f}" y1="{y0:.1f}" x2="{x1 - 6:.1f}" y2="{y1:.1f}"/>')
        sign = "-" if gap < 0 else "+"  # clocks of two hosts can disagree: say so rather than hide it
        parts.append(f'<text class="gap" x="{(x0 + x1) / 2 + 4:.1f}" y="{(y0 + y1) / 2 - 4:.1f}">'
                     f"{sign}{escape(seconds(abs(gap)))}</text>")
    for index, step in enumerate(steps):
        x, y = centre(index, step)
        color = TONES.get(step.tone, TONES["info"])
        stamp = step.at.astimezone(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        parts.append(f'<g class="step" data-type="{escape(step.label)}"><circle cx="{x:.1f}" cy="{y:.1f}" r="6" '
                     f'fill="{color}"/><title>{escape(step.label)} at {stamp} UTC</title>'
                     f'<text class="step-name" x="{x:.1f}" y="{y + 16:.1f}" text-anchor="middle">'
                     f"{escape(step.label)}</text></g>")
    if not steps:
        parts.append(f'<text class="empty" x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">'
                     f"no events yet</text>")
    parts.append("</svg>")
    return "".join(parts)
