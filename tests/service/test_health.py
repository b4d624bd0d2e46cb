"""/health against real sockets: a dead broker and a dead Redis are named, and the answer stays fast."""

from __future__ import annotations

import socket
import time

import pytest

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def _dead_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_names_dead_dependencies_within_its_deadline(client, settings) -> None:
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{_dead_port()}"
    settings.REDIS_URL = f"redis://127.0.0.1:{_dead_port()}/0"
    started = time.monotonic()
    response = client.get("/health")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker", "redis"]
    assert all(body["checks"][f"db:{alias}"]["ok"] for alias in ("default", "order_service", "read_model_service"))
    assert all("latencyMs" in check for check in body["checks"].values())
    assert elapsed < 3.5, f"/health took {elapsed:.1f}s"
    assert body["checks"]["broker"]["error"]  # a signed-in caller sees why


def test_health_tells_anonymous_callers_what_fails_but_not_why(anonymous, settings) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{_dead_port()}/0"
    response = anonymous.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert "redis" in body["failing"]
    assert all("error" not in check for check in body["checks"].values()), body
