"""Consumers report their own readiness: "my group gave me partitions", kept in Redis.

Each consumer loop records, per group, that this process holds partitions:
a member (host:pid:consumer) of the sorted set
``shopsite:ready:<bootstrap servers>:<group>`` scored with the time of its
last report (the broker's address in the key keeps two systems sharing one
Redis, e.g. two `make run`s on one machine, apart). The loop refreshes it every
REFRESH_SECONDS and removes it when it loses its partitions. A member not
refreshed for STALE_SECONDS (its process was killed) no longer counts, so
nobody has to clean up after a kill -9.

The web process reads it for GET /health/ready (shopsite/ops/health.py); the
process supervisor waits on that before it says the system is ready.
Redis is the place because every process of a system already shares it,
on one machine or several.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

KEY_PREFIX = "shopsite:ready:"
REFRESH_SECONDS = 3.0
STALE_SECONDS = 10.0
REDIS_TIMEOUT_SECONDS = 0.5


def key(bootstrap: str, group: str) -> str:
    return f"{KEY_PREFIX}{bootstrap}:{group}"


class ConsumerReadiness:
    """Called from the consumer loop; cheap: consumer.assignment() is local, Redis is written only on change or refresh."""

    def __init__(self, bootstrap: str, group: str, consumer_name: str, redis_url: str,
                 clock: Callable[[], float] = time.time, client: Any = None):
        self.key = key(bootstrap, group)
        self.member = f"{socket.gethostname()}:{os.getpid()}:{consumer_name}"
        self.clock = clock
        self._redis_url = redis_url
        self._client = client
        self._assigned = False
        self._reported_at = 0.0
        self._retry_at = 0.0  # after a failed write: not before the next refresh

    def observe(self, consumer: Any) -> None:
        assigned = bool(consumer.assignment())
        now = self.clock()
        if now < self._retry_at:
            return
        if assigned == self._assigned and (not assigned or now - self._reported_at < REFRESH_SECONDS):
            return
        try:
            client = self._redis()
            if assigned:
                client.zadd(self.key, {self.member: now})
            else:
                client.zrem(self.key, self.member)
        except Exception:  # noqa: BLE001 - readiness must never stop the loop; the next refresh tries again
            log.debug("could not record consumer readiness", exc_info=True)
            self._retry_at = now + REFRESH_SECONDS  # a dead Redis must not slow every loop
            return
        self._assigned, self._reported_at = assigned, now

    def forget(self) -> None:
        """On a clean stop: this process no longer consumes for the group."""
        try:
            self._redis().zrem(self.key, self.member)
        except Exception:  # noqa: BLE001
            log.debug("could not clear consumer readiness", exc_info=True)

    def _redis(self) -> Any:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(self._redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                                socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
        return self._client


def assigned_members(client: Any, bootstrap: str, groups: Iterable[str], now: float | None = None) -> dict[str, int]:
    """Per group, how many consumers reported holding partitions within STALE_SECONDS."""
    now = time.time() if now is None else now
    groups = list(groups)
    pipe = client.pipeline(transaction=False)
    for group in groups:
        pipe.zremrangebyscore(key(bootstrap, group), "-inf", now - STALE_SECONDS)
        pipe.zcard(key(bootstrap, group))
    results = pipe.execute()
    return {group: int(results[2 * n + 1]) for n, group in enumerate(groups)}
