"""One real stack shared by the operability tests: broker, Redis, daphne, two workers, beat.

Two worker processes, so metrics and logs are shown to come from several
processes. Stopped by PID at the end of the session even when tests fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shopsite.stack import Stack, StackConfig
from tests.ops.support import ROOT, artifacts, client, scrape, wait_for

WORKERS = ["orders,inventory", "payment,shipping,readmodel"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def run_stack(config: StackConfig, groups: list[str]) -> Iterator[Stack]:
    stack = Stack(config)
    try:
        stack.start(timeout=120)
        wait_consumers_assigned(stack, groups)
        yield stack
    finally:
        stack.stop()
        leaked = [pid for pid in stack._spawned if _alive(pid)]
        assert not leaked, f"processes left running: {leaked}"


@pytest.fixture(scope="session")
def ops_stack() -> Iterator[Stack]:
    base = artifacts("ops")
    yield from run_stack(StackConfig(
        base_dir=ROOT, var_dir=base / "var", log_dir=base / "logs", port=0, force_embedded_redis=True,
        worker_services=list(WORKERS),
        # Forget a dead consumer group member fast and keep log levels as in production, plus the
        # consumer's per-event lines (DEBUG in production) that the log test follows an order by.
        extra_env={"LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"), "LOG_LEVELS": "shopsite.events.consumer=DEBUG"},
    ), groups=[f"shopsite.{name}" for group in WORKERS for name in group.split(",")])


def wait_consumers_assigned(stack: Stack, groups: list[str], timeout: float = 60) -> None:
    """Stack.start returns once daphne answers; the workers' consumers join their groups after that.

    A consumer reports lag only for partitions it was assigned, so a lag
    sample from every group means every consumer is in and fetching.
    """
    def assigned() -> bool:
        with client(stack) as http:
            lag = scrape(http).get("shopsite_consumer_lag_messages")
        seen = {s.labels["group"] for s in lag.samples} if lag is not None else set()
        return set(groups) <= seen

    wait_for(assigned, timeout, f"consumer groups {groups} to be assigned", interval=0.5)
