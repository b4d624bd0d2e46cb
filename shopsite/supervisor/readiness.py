"""Readiness probes the supervisor waits on: the system says when it is ready; nothing is scraped.

* the broker: its port accepts connections;
* Redis: PING answers;
* the system: GET /health/ready answers 200, which the web process says only
  when every dependency is reachable AND every service's consumer group has
  been assigned its partitions, as the workers' consumers report themselves
  (shopsite/events/readiness.py, shopsite/ops/health.py).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from shopsite.supervisor.sockets import port_open

READY_PATH = "/health/ready"

Probe = Callable[[], tuple[bool, str]]  # (ready, why not)


def kafka_answers(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    return port_open(host, int(port))


def redis_answers(url: str) -> bool:
    import redis  # local: keep `import shopsite.supervisor` cheap

    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def system_ready(base_url: str) -> tuple[bool, str]:
    """(ready, why not): one GET of /health/ready."""
    try:
        with urllib.request.urlopen(f"{base_url}{READY_PATH}", timeout=3) as resp:
            return resp.status == 200, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        body = exc.read(2000).decode("utf-8", "replace")
        try:
            failing = json.loads(body).get("failing")
        except ValueError:
            failing = None
        return False, f"HTTP {exc.code}" + (f", failing: {', '.join(failing)}" if failing else f": {body[:300]}")
    except (OSError, urllib.error.URLError) as exc:
        return False, str(exc)


def wait_until(probe: Probe, deadline: float, what: str,
               check_alive: Callable[[], None] = lambda: None, interval: float = 0.2) -> None:
    """Poll `probe` until it says yes; `check_alive` raises when a child died meanwhile."""
    last = "not probed yet"
    while True:
        check_alive()
        ok, last = probe()
        if ok:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready in time (last: {last})")
        time.sleep(interval)
