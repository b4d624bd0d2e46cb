"""/health/live, /health and /health/ready: readiness is what the consumers report, in a real Redis."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shopsite.events.readiness import STALE_SECONDS, ConsumerReadiness
from shopsite.supervisor import Stack, StackConfig

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]
GROUPS = ["shopsite.orders", "shopsite.inventory", "shopsite.payment", "shopsite.shipping", "shopsite.readmodel"]


class Assigned:
    """The one thing the readiness reporter asks a Kafka consumer."""

    def __init__(self, partitions: list[object]):
        self.partitions = partitions

    def assignment(self) -> list[object]:
        return self.partitions


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base: Path = tmp_path_factory.mktemp("redis")
    infra = Stack(StackConfig(base_dir=base, var_dir=base, force_embedded_redis=True, kafka_bootstrap="unused:1"))
    infra.start_infrastructure(timeout=30)
    try:
        yield infra.redis_url
    finally:
        infra.stop()


@pytest.fixture
def system(settings, redis_url: str):
    settings.REDIS_URL = redis_url
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{_dead_port()}"  # unique: this test's readiness keys
    return settings


def _report(settings, group: str, partitions: list[object], clock=time.time) -> ConsumerReadiness:
    ready = ConsumerReadiness(settings.KAFKA_BOOTSTRAP_SERVERS, group, group.rsplit(".", 1)[1], settings.REDIS_URL,
                              clock=clock)
    ready.observe(Assigned(partitions))
    return ready


def test_live_answers_while_every_dependency_is_down(client, settings) -> None:
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{_dead_port()}"
    settings.REDIS_URL = f"redis://127.0.0.1:{_dead_port()}/0"
    response = client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert client.get("/health").status_code == 503


def test_ready_waits_for_a_consumer_of_every_group(client, system) -> None:
    body = client.get("/health/ready").json()
    assert body["checks"]["consumers"]["ok"] is False and "consumers" in body["failing"]
    assert "consumers" not in client.get("/health").json()["checks"]  # /health keeps its shape

    for group in GROUPS[:-1]:
        _report(system, group, ["p0"])
    assert client.get("/health/ready").json()["checks"]["consumers"]["ok"] is False  # readmodel still missing
    readmodel = _report(system, GROUPS[-1], ["p0"])
    assert client.get("/health/ready").json()["checks"]["consumers"]["ok"] is True

    readmodel.observe(Assigned([]))  # its partitions were revoked
    assert client.get("/health/ready").json()["checks"]["consumers"]["ok"] is False


def test_a_consumer_that_stopped_reporting_no_longer_counts(client, system) -> None:
    for group in GROUPS:
        # A report from a process that died (kill -9) longer ago than the staleness limit.
        _report(system, group, ["p0"], clock=lambda: time.time() - STALE_SECONDS - 1)
    assert client.get("/health/ready").json()["checks"]["consumers"]["ok"] is False
    assert not any(redis.Redis.from_url(system.REDIS_URL).keys(f"*{system.KAFKA_BOOTSTRAP_SERVERS}*")), \
        "stale members are swept when read"


def test_a_dead_redis_is_not_retried_on_every_loop() -> None:
    class DeadRedis:
        calls = 0

        def zadd(self, *args: object) -> None:
            DeadRedis.calls += 1
            raise redis.ConnectionError("refused")

    now = [1000.0]
    ready = ConsumerReadiness("b:1", "shopsite.orders", "orders", "redis://unused", clock=lambda: now[0],
                              client=DeadRedis())
    for _ in range(100):
        ready.observe(Assigned(["p0"]))  # never raises into the consumer loop
    assert DeadRedis.calls == 1  # one attempt, then nothing until the next refresh
    now[0] += 60
    ready.observe(Assigned(["p0"]))
    assert DeadRedis.calls == 2
