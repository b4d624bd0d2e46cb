"""One real stack shared by the operability tests: broker, Redis, two web processes, two workers, beat.

Two worker processes, so metrics and logs are shown to come from several
processes. Stopped by PID at the end of the session even when tests fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shopsite.supervisor import Stack, StackConfig
from tests.system.ops.support import ROOT, WEB_PROCESSES, artifacts
from tests.system.waiting import alive as _alive

WORKERS = ["orders,inventory", "payment,shipping,readmodel"]




def run_stack(config: StackConfig) -> Iterator[Stack]:
    """Started (ready: every consumer group assigned, as /health/ready reports), yielded, stopped, leak-checked."""
    stack = Stack(config)
    try:
        stack.start(timeout=120)
        yield stack
    finally:
        stack.stop()
        leaked = [pid for pid in stack.spawned_pids() if _alive(pid)]
        assert not leaked, f"processes left running: {leaked}"


@pytest.fixture(scope="session")
def ops_stack() -> Iterator[Stack]:
    base = artifacts("ops")
    yield from run_stack(StackConfig(
        base_dir=ROOT, var_dir=base / "var", log_dir=base / "logs", port=0, force_embedded_redis=True,
        worker_services=list(WORKERS), web_processes=len(WEB_PROCESSES),
        # Keep log levels as in production, plus the consumer's per-event lines (DEBUG in
        # production) that the log test follows an order by.
        extra_env={"LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"), "LOG_LEVELS": "shopsite.events.consumer=DEBUG"},
    ))
