"""The supervisor keeps a real system up: killed processes come back, the rest keeps serving, a crash loop stops all.

One stack for the module, with two web processes on one socket. The tests
run in file order; the last one drives the stack into a crash loop, which
stops it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest

from shopsite.supervisor import RestartPolicy, Stack, StackConfig
from tests.system.ops.support import ROOT, artifacts, client, place_order, scrape, value, wait_all_shipped, wait_for
from tests.system.waiting import alive as _alive

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

# A restart waits long enough that the tests can act while the victim is down; a third death in a
# minute is a crash loop.
POLICY = RestartPolicy(max_deaths=3, window_seconds=60, first_delay=5.0, max_delay=5.0)




@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    base = artifacts("restarts")
    running = Stack(StackConfig(base_dir=ROOT, var_dir=base / "var", log_dir=base / "logs", port=0,
                                force_embedded_redis=True, web_processes=2, restart=POLICY))
    try:
        running.start(timeout=120)
        yield running
    finally:
        running.stop()
        leaked = [pid for pid in running.spawned_pids() if _alive(pid)]
        assert not leaked, f"processes left running: {leaked}"


def test_a_worker_killed_with_sigkill_is_restarted_and_orders_keep_shipping(stack: Stack) -> None:
    with client(stack) as http:
        before = place_order(http, "SKU-1", qty=1, total=4)["orderId"]
        victim = stack.kill("worker-0", signal.SIGKILL)  # orders, inventory, readmodel
        # Accepted while the worker is down: the web tier does not need it.
        during = [place_order(http, "SKU-1", qty=1, total=4)["orderId"] for _ in range(5)]
        # Seen dead before its restart (POLICY.first_delay away): a SIGKILL takes effect asynchronously,
        # and five POSTs can be over within milliseconds.
        wait_for(lambda: "worker-0" in stack.dead_children(), POLICY.first_delay / 2, "worker-0 seen dead",
                 interval=0.02)
        stack.wait_running("worker-0", not_pid=victim, timeout=60)
        after = place_order(http, "SKU-1", qty=1, total=4)["orderId"]
        wait_all_shipped(stack, [before, *during, after], timeout=90)

        (death,) = stack.deaths("worker-0")
        assert (death.pid, death.exit_code, death.restart_in) == (victim, -signal.SIGKILL, POLICY.first_delay)
        families = wait_for(lambda: (f := scrape(http)) and value(
            f, "shopsite_process_restarts_total", process="worker-0") == 1 and f, 10, "the restart metric")
        assert value(families, "shopsite_process_deaths_total", process="worker-0") == 1
        assert value(families, "shopsite_process_restarts_total", process="worker-1") == 0
    stack.wait_ready(timeout=60)  # its consumers hold their partitions again


def test_a_web_process_killed_the_other_keeps_serving_and_it_comes_back(stack: Stack) -> None:
    victim = stack.kill("web-0", signal.SIGKILL)
    placed = []
    for _ in range(10):
        with client(stack) as http:  # a new connection each time
            placed.append(place_order(http, "SKU-2", qty=1, total=6)["orderId"])
    # All of them were served while web-0 was down (it waits POLICY.first_delay before coming back).
    wait_for(lambda: "web-0" in stack.dead_children(), POLICY.first_delay / 2, "web-0 seen dead", interval=0.02)
    new_pid = stack.wait_running("web-0", not_pid=victim, timeout=60)
    assert new_pid != victim
    wait_all_shipped(stack, placed, timeout=60)
    stack.wait_ready(timeout=60)
    assert [d.pid for d in stack.deaths("web-0")] == [victim]


def test_a_crash_loop_stops_everything(stack: Stack) -> None:
    pids = stack.spawned_pids()
    for death in range(POLICY.max_deaths):
        victim = stack.kill("beat", signal.SIGKILL)
        if death + 1 < POLICY.max_deaths:
            stack.wait_running("beat", not_pid=victim, timeout=60)
    wait_for(lambda: stack.failure, 10, "the supervisor to give up")
    assert "beat died 3 times within 60s (crash loop)" in (stack.failure or "")
    wait_for(lambda: not any(_alive(pid) for pid in stack.spawned_pids()), 30, "every process to be stopped")
    assert set(pids) <= set(stack.spawned_pids())
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{stack.url}/health/live", timeout=2)  # the listening socket is closed too
