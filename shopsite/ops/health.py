"""Dependency checks for /health: each database, the broker, Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections

from shopsite.databases import ALL_ALIASES

_admin_lock = threading.Lock()
_admin: Any = None


def _check_database(alias: str) -> None:
    connection = connections[alias]
    if connection.vendor == "mongodb":
        # The backend has no SQL cursor; ping is MongoDB's own liveness probe.
        connection.get_database().command("ping")
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    global _admin
    from confluent_kafka.admin import AdminClient

    with _admin_lock:
        if _admin is None:
            _admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
                                  "socket.connection.setup.timeout.ms": 2000})
        admin = _admin
    admin.list_topics(timeout=2.0)


def _check_redis() -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        client.ping()
    finally:
        client.close()


def checks() -> dict[str, Callable[[], None]]:
    found: dict[str, Callable[[], None]] = {f"db:{alias}": (lambda a=alias: _check_database(a)) for alias in ALL_ALIASES}
    found["broker"] = _check_broker
    found["redis"] = _check_redis
    return found


def run_checks() -> tuple[bool, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, Any]] = {}
    for name, check in checks().items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"ok": True}
        except Exception as exc:
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        results[name]["latencyMs"] = round((time.perf_counter() - started) * 1000, 2)
    return all(r["ok"] for r in results.values()), results
