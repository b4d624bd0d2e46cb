"""Restart decisions (pure functions of the death times) and the restart metric.

A child that dies is started again after a delay that doubles with each
death inside the policy's window; too many deaths inside the window is a
crash loop, and restarting would only hide it: the supervisor stops
everything and says why.

The supervisor is not a Django process and has no /metrics of its own. It
writes its counters as Prometheus text into the metrics directory the
children share (PROMETHEUS_MULTIPROC_DIR); the web processes' /metrics
appends that file to what the children report (shopsite/events/metrics.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shopsite.supervisor.config import RestartPolicy

METRICS_FILE = "supervisor.prom"


@dataclass(frozen=True)
class Decision:
    restart: bool
    delay: float  # seconds to wait before starting it again
    recent_deaths: int  # deaths inside the window, this one included

    @property
    def crash_loop(self) -> bool:
        return not self.restart


def recent(deaths: Sequence[float], now: float, policy: RestartPolicy) -> list[float]:
    """The death times still inside the window."""
    return [t for t in deaths if now - t < policy.window_seconds]


def decide(deaths: Sequence[float], now: float, policy: RestartPolicy) -> Decision:
    """What to do after a death; `deaths` holds the child's death times, the latest one included."""
    count = len(recent(deaths, now, policy))
    if count >= policy.max_deaths:
        return Decision(restart=False, delay=0.0, recent_deaths=count)
    delay = min(policy.first_delay * 2 ** max(count - 1, 0), policy.max_delay)
    return Decision(restart=True, delay=delay, recent_deaths=count)


def exposition(restarts: Mapping[str, int], deaths: Mapping[str, int]) -> str:
    """Prometheus text for the supervisor's counters, one sample per child name (a bounded set)."""
    lines = [
        "# HELP shopsite_process_restarts_total Children the supervisor started again after they died.",
        "# TYPE shopsite_process_restarts_total counter",
        *(f'shopsite_process_restarts_total{{process="{name}"}} {count}' for name, count in sorted(restarts.items())),
        "# HELP shopsite_process_deaths_total Children that exited without being asked to (kill -9, crash, exit).",
        "# TYPE shopsite_process_deaths_total counter",
        *(f'shopsite_process_deaths_total{{process="{name}"}} {count}' for name, count in sorted(deaths.items())),
    ]
    return "\n".join(lines) + "\n"


def write_metrics(directory: Path, restarts: Mapping[str, int], deaths: Mapping[str, int]) -> None:
    """Replace the file atomically: a /metrics scrape never reads half of it."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / METRICS_FILE
    partial = directory / f".{METRICS_FILE}.{os.getpid()}"
    partial.write_text(exposition(restarts, deaths))
    partial.replace(target)
