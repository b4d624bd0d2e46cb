"""Dependency checks for /health: each database this process uses, the broker, Redis.

Three questions, three URLs: /health/live (the process answers at all; no
check), /health (its dependencies are reachable) and /health/ready (they are,
AND every served service has a consumer holding its partitions, as the
consumers report themselves in Redis: shopsite/events/readiness.py). A
system is ready to take orders only when the last one says so.

Built to answer quickly when a dependency is down, which is exactly when
someone is looking:

* every check runs in parallel with its own timeout, and the whole answer
  has a deadline (DEADLINE_SECONDS); a check still running then is reported
  as failed with "no answer within ...";
* one check of a kind is in flight at a time: callers arriving meanwhile
  share its result instead of piling blocked threads onto a dead broker;
* the Kafka admin client and the Redis client are kept between calls (no new
  client, socket and metadata fetch per probe). Both reconnect by themselves
  (librdkafka with a short reconnect backoff), and the admin client is rebuilt
  after a few failures in a row as a safety net, so a broker that comes back
  is seen as healthy again within a couple of seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)

DEADLINE_SECONDS = 2.5
BROKER_TIMEOUT_SECONDS = 2.0
REDIS_TIMEOUT_SECONDS = 1.0
REBUILD_AFTER_FAILURES = 3

CheckResult = dict[str, Any]

_executor = ThreadPoolExecutor(max_workers=12, thread_name_prefix="health")
_inflight_lock = threading.Lock()
_inflight: dict[str, Future[CheckResult]] = {}


def _check_database(alias: str) -> None:
    connection = connections[alias]
    if connection.vendor == "mongodb":
        # The backend has no SQL cursor; ping is MongoDB's own liveness probe.
        connection.get_database().command("ping")
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # Pool threads would otherwise each keep a connection per database open forever;
        # reconnecting per probe also proves that new connections still work.
        connection.close()


class _Broker:
    """A long-lived admin client; list_topics is one metadata round trip."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._admin: Any = None
        self._failures = 0
        self._bootstrap = ""

    def _client(self) -> Any:
        from confluent_kafka.admin import AdminClient

        from shopsite.events.kafka import base_config

        with self._lock:
            if (self._admin is None or self._failures >= REBUILD_AFTER_FAILURES
                    or self._bootstrap != settings.KAFKA_BOOTSTRAP_SERVERS):
                self._bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
                config = {k: v for k, v in base_config().items() if k != "error_cb"}  # failures are reported here
                self._admin = AdminClient({**config, "socket.connection.setup.timeout.ms": 2000,
                                           "reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 1000})
                self._failures = 0
            return self._admin

    def check(self) -> None:
        admin = self._client()
        try:
            admin.list_topics(timeout=BROKER_TIMEOUT_SECONDS)
        except Exception:
            with self._lock:
                self._failures += 1
            raise
        finally:
            admin.poll(0)  # serve librdkafka's queued log lines
        with self._lock:
            self._failures = 0


class _Redis:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: Any = None
        self._url = ""

    def client(self) -> Any:
        import redis

        with self._lock:
            if self._client is None or self._url != settings.REDIS_URL:
                self._url = settings.REDIS_URL
                self._client = redis.Redis.from_url(self._url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                                    socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
            return self._client

    def check(self) -> None:
        self.client().ping()  # a dropped connection is re-established by the pool on the next call


_broker = _Broker()
_redis = _Redis()


def database_aliases() -> list[str]:
    """`default` (users, sessions, tokens) plus the databases of the services this process serves."""
    return ["default", *(s.alias for s in settings.SERVED_SERVICES)]


def checks() -> dict[str, Callable[[], None]]:
    found: dict[str, Callable[[], None]] = {
        f"db:{alias}": (lambda a=alias: _check_database(a)) for alias in database_aliases()
    }
    found["broker"] = _broker.check
    found["redis"] = _redis.check
    return found


def consumer_groups() -> list[str]:
    """The Kafka consumer groups of the services this process serves."""
    return [f"{settings.KAFKA_GROUP_PREFIX}.{s.name}" for s in settings.SERVED_SERVICES]


def _check_consumers() -> None:
    from shopsite.events.readiness import assigned_members

    members = assigned_members(_redis.client(), settings.KAFKA_BOOTSTRAP_SERVERS, consumer_groups())
    missing = sorted(group for group, count in members.items() if count == 0)
    if missing:
        raise RuntimeError(f"no consumer holds partitions yet for {', '.join(missing)}")


def _timed(check: Callable[[], None]) -> CheckResult:
    started = time.perf_counter()
    try:
        check()
        result: CheckResult = {"ok": True}
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latencyMs"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def _submit(name: str, check: Callable[[], None]) -> Future[CheckResult]:
    with _inflight_lock:
        running = _inflight.get(name)
        if running is not None and not running.done():
            return running
        future = _executor.submit(_timed, check)
        _inflight[name] = future
        return future


def run_checks(deadline: float = DEADLINE_SECONDS, ready: bool = False) -> tuple[bool, dict[str, CheckResult]]:
    """/health's checks; with `ready`, /health/ready's: the consumers' assignment too."""
    wanted = checks()
    if ready:
        wanted["consumers"] = _check_consumers
    futures = {name: _submit(name, check) for name, check in wanted.items()}
    wait(list(futures.values()), timeout=deadline)
    results: dict[str, CheckResult] = {}
    for name, future in futures.items():
        if future.done():
            results[name] = future.result()
        else:
            results[name] = {"ok": False, "error": f"no answer within {deadline:.1f}s",
                             "latencyMs": round(deadline * 1000, 2)}
    ok = all(r["ok"] for r in results.values())
    failing = sorted(n for n, r in results.items() if not r["ok"] and n != "consumers")
    if failing:
        # Consumers not (yet) assigned are the normal state of a starting system, polled for by the
        # supervisor: not worth a warning per probe; /health/ready's 503 says it.
        log.warning(f"health check failing: {', '.join(failing)}", extra={"failing": failing})
    return ok, results
