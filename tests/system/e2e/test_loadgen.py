"""`manage.py loadgen` against the running system: over HTTP with a token, and --direct through the order service's code."""

from __future__ import annotations

import json

import pytest

from shopsite.supervisor import Stack
from tests.system.e2e.conftest import manage

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]


def _summary(stdout: str) -> dict:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if "accepted_per_s" in line][-1]


@pytest.mark.parametrize("mode", [["--concurrency", "4"], ["--concurrency", "2", "--rate", "20"], ["--direct"]],
                         ids=["http", "http-at-a-rate", "direct"])
def test_every_order_loadgen_places_is_seen_shipped_with_its_latency(stack: Stack, ops_token: str, mode: list[str]):
    proc = manage(stack, "loadgen", "--base", stack.url, "--token", ops_token, "--orders", "25", "--json",
                  "--timeout", "60", *mode)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = _summary(proc.stdout)
    assert (summary["accepted"], summary["shipped"], summary["failures"]) == (25, 25, 0), summary
    assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert summary["accepted_per_s"] > 0 and summary["shipped_per_s"] > 0

