"""Consumer lag and outbox backlog per service over time, from the processes' own metrics.

The dashboard reads the metrics every process exports (issue 13: never
another service's database). Gauges only say "now", so the history is kept
here: a sample of the exposition at most every SAMPLE_SECONDS, taken when a
dashboard asks for its charts, pushed onto a capped Redis list.

Why Redis and on request: several web processes serve the dashboard, and
a per-process history would make the chart change with whichever process
answered; Redis is already there for Celery and Channels. Sampling on
request needs no new scheduled task and no process of its own; the price is
a gap in the history while no dashboard is open, and the charts show that
gap as a gap. (A SET NX EX lock makes one sample per interval across all
processes.) If Redis does not answer, the history lives in this process
alone until it does: the chart degrades, the page does not fail.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import redis
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from shopsite.dashboard.series import Window
from shopsite.events.metrics import exposition

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 10
KEEP_SECONDS = 3 * 3600
KEY = "shopsite:dashboard:pulse"
LOCK_KEY = KEY + ":lock"


@dataclass(frozen=True)
class Sample:
    at: float  # unix time
    lag: dict[str, float] = field(default_factory=dict)  # service -> messages behind, all partitions
    backlog: dict[str, float] = field(default_factory=dict)  # service -> undispatched outbox rows

    def to_json(self) -> str:
        return json.dumps({"at": self.at, "lag": self.lag, "backlog": self.backlog})

    @classmethod
    def from_json(cls, text: str | bytes) -> Sample:
        data = json.loads(text)
        return cls(float(data["at"]), dict(data.get("lag", {})), dict(data.get("backlog", {})))


def read_sample(text: str, at: float, group_prefix: str) -> Sample:
    """The lag and backlog gauges of one text exposition, per service."""
    lag: dict[str, float] = {}
    backlog: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            if metric.name == "shopsite_consumer_lag_messages":
                group = metric.labels.get("group", "")
                # A service's other lane has a group of its own (<prefix>.<service>.other): one service.
                service = group.removeprefix(group_prefix + ".").partition(".")[0]
                lag[service] = lag.get(service, 0.0) + max(0.0, metric.value)
            elif metric.name == "shopsite_outbox_backlog":
                service = metric.labels.get("service", "")
                backlog[service] = backlog.get(service, 0.0) + metric.value
    return Sample(at, lag, backlog)


def per_minute(window: Window, samples: Iterable[Sample], pick: Callable[[Sample], dict[str, float]],
               names: Sequence[str]) -> dict[str, list[float | None]]:
    """The highest value per minute for each name (a spike inside a minute stays visible); None: no sample."""
    result: dict[str, list[float | None]] = {name: [None] * window.minutes for name in names}
    for sample in samples:
        index = window.index(datetime.fromtimestamp(sample.at, timezone.utc))
        if index is None:
            continue
        values = pick(sample)
        for name in names:
            value = values.get(name, 0.0)  # a gauge not exported yet: nothing behind
            current = result[name][index]
            result[name][index] = value if current is None else max(current, value)
    return result


class History:
    """The sampled history: newest first on a Redis list, or in this process when Redis is away."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local: deque[Sample] = deque(maxlen=KEEP_SECONDS // SAMPLE_SECONDS)
        self._client: redis.Redis | None = None
        self._warned = False

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return self._client

    def record(self, take: Callable[[], Sample]) -> None:
        """Take a sample unless some process did within the last SAMPLE_SECONDS."""
        try:
            client = self._redis()
            if client.set(LOCK_KEY, "1", nx=True, ex=SAMPLE_SECONDS):
                with client.pipeline() as pipe:
                    pipe.lpush(KEY, take().to_json())
                    pipe.ltrim(KEY, 0, KEEP_SECONDS // SAMPLE_SECONDS - 1)
                    pipe.execute()
            return
        except Exception as exc:  # noqa: BLE001 - any Redis failure: keep a history in this process
            if not self._warned:  # once per process, not on every refresh of every open dashboard
                log.warning("dashboard history: Redis unavailable (%s), sampling in-process", exc)
                self._warned = True
        if not self.local or time.time() - self.local[0].at >= SAMPLE_SECONDS:
            self.local.appendleft(take())

    def since(self, at: float) -> list[Sample]:
        try:
            count = int((time.time() - at) // SAMPLE_SECONDS) + 2
            samples = [Sample.from_json(raw) for raw in self._redis().lrange(KEY, 0, count)]
        except Exception:  # noqa: BLE001
            samples = list(self.local)
        return [s for s in samples if s.at >= at]


_history: History | None = None


def history() -> History:
    global _history
    if _history is None:
        _history = History(settings.REDIS_URL)
    return _history


def sample_now() -> Sample:
    return read_sample(exposition().decode(), time.time(), settings.KAFKA_GROUP_PREFIX)
