"""The supervisor's per-service mode and JSON-only commands (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopsite.supervisor import Stack, StackConfig, config_from_env

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")


def test_a_service_alone_gets_its_seed_port_one_worker_and_its_own_runtime_files(tmp_path: Path) -> None:
    cfg = config_from_env({"SHOPSITE_WORKERS": "orders;payment"}, base_dir=tmp_path, service="payment")
    assert (cfg.port, cfg.worker_services, cfg.service) == (4003, ["payment"], "payment")
    assert config_from_env({"SHOPSITE_SERVICE": "readmodel", "PORT": "9000"}, base_dir=tmp_path).port == 9000
    with pytest.raises(ValueError, match="unknown service"):
        config_from_env({}, base_dir=tmp_path, service="billing")

    stack = Stack(StackConfig(base_dir=tmp_path, var_dir=tmp_path / "var", service="payment", web_processes=1))
    assert stack.worker_groups == ["payment"]
    assert stack.prometheus_dir == tmp_path / "var" / "prometheus-payment"
    commands = dict(stack.app_commands())
    assert list(commands) == ["web-0", "worker-0", "beat"]
    assert "--services=payment" in commands["worker-0"]
    assert "celerybeat-schedule-payment" in " ".join(commands["beat"])


def test_every_app_command_keeps_text_off_stdout(tmp_path: Path) -> None:
    commands = dict(Stack(StackConfig(base_dir=tmp_path, var_dir=tmp_path / "var", web_processes=1)).app_commands())
    assert commands["web-0"][1:5] == ["-m", "shopsite.web", "-v", "0"]  # no text access log
    for name in ("worker-0", "beat"):
        assert "--quiet" in commands[name] and not any(a.startswith("--loglevel") for a in commands[name])
