from __future__ import annotations

import time
from pathlib import Path

import pytest

from shopsite.supervisor import Stack, StackConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def infrastructure() -> Stack:
    """A real Kafka-protocol broker (embedded tansu) and redis-server for this test session; stopped by PID afterwards."""
    artifacts = ROOT / "test-artifacts" / f"integration-{int(time.time())}"
    stack = Stack(StackConfig(base_dir=ROOT, var_dir=artifacts / "var", log_dir=artifacts / "logs",
                              force_embedded_redis=True))
    stack.start_infrastructure()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def broker(infrastructure: Stack) -> str:
    return infrastructure.kafka_bootstrap


@pytest.fixture
def kafka_settings(broker, settings):
    """Point this process's Kafka clients at the test broker, with fresh clients."""
    from shopsite.events import kafka

    kafka.close_shared_producer(timeout=0)
    settings.KAFKA_BOOTSTRAP_SERVERS = broker
    kafka.ensure_topics()
    yield broker
    kafka.close_shared_producer(timeout=0)
