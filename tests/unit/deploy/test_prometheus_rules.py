"""The alert rules: valid (promtool check rules), behaving as their unit tests say (promtool test rules),
and written against metrics the code really exports."""

from __future__ import annotations

import pytest
import yaml

from tests.unit.deploy.support import DEPLOY, exported_series_names, metric_names_in, promtool

pytestmark = pytest.mark.backends("sqlite")

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
WANTED = {"ShopsiteConsumerLagHigh", "ShopsiteConsumerStalled", "ShopsiteConsumerPaused", "ShopsiteOutboxStuck",
          "ShopsiteDeadLetters", "ShopsiteSagasStuck", "ShopsiteHttpErrorRate", "ShopsitePublishFailures"}


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules():
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_test_rules():
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_unit_test_and_a_runbook():
    alerts = {rule["alert"] for rule in rules()}
    assert alerts == WANTED
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in cases for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for test in cases for case in test["alert_rule_test"] if not case["exp_alerts"]}
    assert fired == alerts and quiet == alerts  # each alert shown to fire, and shown not to fire too early
    operations = (DEPLOY.parent / "docs" / "operations.md").read_text()
    for rule in rules():
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert f"### {anchor.replace('-', ' ')}" in operations.lower(), anchor


def test_rules_use_only_metrics_the_code_exports():
    exported = exported_series_names()
    for rule in rules():
        assert metric_names_in(rule["expr"]) <= exported, rule["alert"]
