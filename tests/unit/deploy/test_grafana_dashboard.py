"""The Grafana dashboard: valid JSON, every query valid PromQL over metrics the code exports."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.unit.deploy.support import DEPLOY, exported_series_names, metric_names_in, promtool

pytestmark = pytest.mark.backends("sqlite")

DASHBOARD = DEPLOY / "grafana" / "shopsite.json"


def queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel["targets"]]


def test_the_dashboard_shows_what_operators_look_at():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["templating"]["list"][0]["type"] == "datasource"
    titles = " | ".join(p["title"] for p in board["panels"]).lower()
    for wanted in ("orders per minute", "latency", "consumer lag", "outbox backlog", "oldest undispatched",
                   "dead letters", "error rate"):
        assert wanted in titles, wanted
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_every_query_uses_metrics_the_code_exports():
    exported = exported_series_names()
    for title, expr in queries():
        used = metric_names_in(expr)
        assert used and used <= exported, (title, used - exported)


def test_every_query_is_valid_promql(tmp_path):
    # promtool parses expressions in rule files: each query becomes a recording rule.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, (_title, expr) in enumerate(queries())]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
