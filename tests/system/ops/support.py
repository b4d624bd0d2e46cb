"""Helpers for tests that drive a real stack: HTTP, metrics, logs, read-only database peeks."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shopsite.supervisor import Stack
from tests.system.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")

# Our processes: every line they print must be a JSON object (the broker and Redis are infrastructure).
WEB_PROCESSES = ("web-0", "web-1")  # the ops stack runs two web processes on one socket
APP_PROCESSES = (*WEB_PROCESSES, "worker-0", "worker-1", "beat", "migrate_all", "ensure_topics")


def artifacts(name: str) -> Path:
    return ROOT / "test-artifacts" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"




_tokens: dict[int, str] = {}
_tokens_lock = threading.Lock()  # a fault case's clients ask for it at once: issue one


def operator_token(stack: Stack) -> str:
    """An operator's API token for this stack (issued once per stack, in the stack's environment)."""
    with _tokens_lock:
        return _issued_once(stack)


def _issued_once(stack: Stack) -> str:
    if id(stack) not in _tokens:
        done = subprocess.run([sys.executable, "manage.py", "issue_ops_token", "ops-tests"], cwd=ROOT,
                              env=stack.env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"issue_ops_token failed: {done.stdout}\n{done.stderr}"
        _tokens[id(stack)] = [line for line in done.stdout.splitlines()
                              if line.strip() and not line.startswith("{")][-1].strip()
    return _tokens[id(stack)]


def client(stack: Stack, timeout: float = 10.0) -> httpx.Client:
    """HTTP to the stack as a signed-in operator (every page and API needs credentials)."""
    return httpx.Client(base_url=stack.url, timeout=timeout,
                        headers={"Authorization": f"Bearer {operator_token(stack)}"})


def place_order(http: httpx.Client, sku: str, qty: int = 1, total: float = 10) -> dict[str, Any]:
    response = http.post("/api/orders", json={"items": [{"sku": sku, "qty": qty}], "total": total})
    assert response.status_code == 201, response.text
    return response.json()


# ---- databases (read-only: the stack's processes own them) ----------------------


def query(stack: Stack, alias: str, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    path = stack.config.var_dir / f"{alias}.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, tuple(params)).fetchall()


def statuses(stack: Stack, order_ids: list[str]) -> dict[str, str]:
    marks = ",".join("?" * len(order_ids))
    return dict(query(stack, "order_service", f"SELECT _id, status FROM orders WHERE _id IN ({marks})", order_ids))


def wait_all_shipped(stack: Stack, order_ids: list[str], timeout: float) -> None:
    def shipped() -> bool:
        found = statuses(stack, order_ids)
        return len(found) == len(order_ids) and set(found.values()) == {"SHIPPED"}

    try:
        wait_for(shipped, timeout, f"{len(order_ids)} orders to reach SHIPPED", interval=0.5)
    except AssertionError:
        counts: dict[str, int] = {}
        for status in statuses(stack, order_ids).values():
            counts[status] = counts.get(status, 0) + 1
        raise AssertionError(f"not all orders SHIPPED in {timeout:.0f}s: {counts}; dead: {stack.dead_children()}")


def stock(stack: Stack, sku: str) -> tuple[int, int]:
    ((available, reserved),) = query(stack, "inventory_service", "SELECT available, reserved FROM stock WHERE _id=?",
                                     [sku])
    return available, reserved


# ---- metrics -------------------------------------------------------------------


def scrape(http: httpx.Client) -> dict[str, Any]:
    """Families by name; text_string_to_metric_families raises on anything malformed."""
    response = http.get("/metrics")
    assert response.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def value(families: dict[str, Any], sample: str, **labels: str) -> float:
    """Sum of the samples named `sample` whose labels include `labels`."""
    total = 0.0
    for family in families.values():
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


# ---- logs ----------------------------------------------------------------------


def log_lines(stack: Stack, name: str) -> list[dict[str, Any]]:
    """Every line a process wrote, each parsed as JSON; fails naming the first line that is not."""
    assert stack.config.log_dir is not None
    path = stack.config.log_dir / f"{name}.log"
    if not path.exists():
        return []
    parsed = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line[:300]}") from None
        assert isinstance(obj, dict), f"{path.name}:{number} is not a JSON object"
        for key in ("ts", "level", "process", "service", "message"):
            assert key in obj, f"{path.name}:{number} has no {key!r}: {line[:300]}"
        parsed.append(obj)
    return parsed
