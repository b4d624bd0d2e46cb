from __future__ import annotations

import os
import signal
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


@pytest.fixture
def own_broker(settings):
    """A tansu broker of this test's own, which the test kills (-9) and restarts on the same port."""
    from shopsite.events import kafka

    artifacts = ROOT / "test-artifacts" / f"relay-faults-{int(time.time())}"
    stack = Stack(StackConfig(base_dir=ROOT, var_dir=artifacts / "var", log_dir=artifacts / "logs",
                              force_embedded_redis=True))
    stack.start_infrastructure()
    kafka.close_shared_producer(timeout=0)
    settings.KAFKA_BOOTSTRAP_SERVERS = stack.kafka_bootstrap
    try:
        kafka.ensure_topics()
        yield stack
    finally:
        kafka.close_shared_producer(timeout=0)
        stack.stop()


def restart_empty(stack: Stack) -> None:
    """kill -9 the stack's broker and start it again on the same port, with no state: no topics, no producer ids."""
    os.kill(stack.pid("kafka"), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while stack.dead_children() != ["kafka"] and time.monotonic() < deadline:
        time.sleep(0.1)
    stack.start_child("kafka")
