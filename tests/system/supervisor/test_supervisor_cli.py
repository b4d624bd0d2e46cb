"""`make run`'s command, as a user runs it: one command prints the dashboard URL; Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shopsite.supervisor import Stack, StackConfig
from tests.system.ops.support import ROOT, artifacts, wait_for
from tests.system.waiting import alive as _alive

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

DASHBOARD = re.compile(r"shopsite is running:\s+dashboard\s+(http://127\.0\.0\.1:\d+/)")


def _children(pid: int) -> set[int]:
    """Direct children of `pid`, from /proc."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found




@pytest.fixture
def redis_only(tmp_path: Path) -> Iterator[str]:
    """Redis of the test's own: the command would otherwise use the machine's on :6379."""
    infra = Stack(StackConfig(base_dir=ROOT, var_dir=tmp_path / "infra", force_embedded_redis=True,
                              kafka_bootstrap="unused:9092"))
    infra.start_infrastructure(timeout=30)
    try:
        yield infra.redis_url
    finally:
        infra.stop()


def test_one_command_prints_the_dashboard_and_ctrl_c_stops_everything(redis_only: str) -> None:
    base = artifacts("cli")
    env = {**os.environ, "PORT": "0", "SHOPSITE_VAR_DIR": str(base / "var"), "SHOPSITE_LOG_DIR": str(base / "logs"),
           "REDIS_URL": redis_only, "SHOPSITE_WEB_PROCESSES": "2"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the command starts its own broker
    proc = subprocess.Popen([sys.executable, "-m", "shopsite.supervisor"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    children: set[int] = set()
    try:
        url = wait_for(lambda: (m := DASHBOARD.search("".join(output))) and m.group(1), 120,
                       "the banner with the dashboard URL", interval=0.2)
        assert httpx.get(f"{url}health/ready", timeout=5).status_code == 200  # ready when it says so
        children = _children(proc.pid)
        assert len(children) == 7  # kafka, web-0, web-1, worker-0, worker-1, worker-2 (SQLite's three), beat

        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) == 0, "".join(output)[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=5)
    text = "".join(output)
    assert "shopsite: stopped" in text
    wait_for(lambda: not any(_alive(pid) for pid in children), 10, "every child to be gone")
