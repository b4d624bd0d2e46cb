"""Unit tests for the process supervisor (no Django, no database)."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from shopsite import stack as stackmod
from shopsite.stack import Stack, StackConfig, config_from_env, free_port, parse_workers, resolve_redis


def _alive(pid: int) -> bool:
    """True while the PID is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _wait_dead(pids: list[int], timeout: float = 5) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    return alive


def _cfg(tmp_path: Path, **kw: object) -> StackConfig:
    return StackConfig(
        base_dir=tmp_path,
        var_dir=tmp_path / "var",
        log_dir=tmp_path / "logs",
        force_embedded_redis=True,
        **kw,  # type: ignore[arg-type]
    )


def test_importable_without_django_configured() -> None:
    import subprocess

    # The supervisor runs before any settings/database exist.
    code = (
        "import sys, shopsite.stack\n"
        "dj = sys.modules.get('django.conf')\n"
        "print(bool(dj and dj.settings.configured))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ["orders,inventory,payment,shipping,readmodel"]),
        ("", ["orders,inventory,payment,shipping,readmodel"]),
        ("orders,inventory;payment,shipping,readmodel", ["orders,inventory", "payment,shipping,readmodel"]),
        (" orders , inventory ;; payment; ", ["orders,inventory", "payment"]),
        ("readmodel", ["readmodel"]),
    ],
)
def test_parse_workers(value: str | None, expected: list[str]) -> None:
    assert parse_workers(value) == expected


def test_config_from_env(tmp_path: Path) -> None:
    cfg = config_from_env(
        {"PORT": "8123", "SHOPSITE_WORKERS": "orders;payment", "REDIS_URL": "redis://h:1/2"}, base_dir=tmp_path
    )
    assert cfg.port == 8123
    assert cfg.var_dir == tmp_path / "var"
    assert cfg.worker_services == ["orders", "payment"]
    assert cfg.redis_url == "redis://h:1/2"
    assert cfg.kafka_bootstrap is None
    assert config_from_env({}, base_dir=tmp_path).port == 8000


def test_two_worker_processes_by_default_split_by_service_on_sqlite(tmp_path: Path) -> None:
    every = "orders,inventory,payment,shipping,readmodel"
    split = config_from_env({}, base_dir=tmp_path).worker_services
    assert split == ["orders,inventory,readmodel", "payment,shipping"]
    assert sorted(",".join(split).split(",")) == sorted(every.split(","))  # each service exactly once
    assert config_from_env({"SHOPSITE_DB": "postgres"}, base_dir=tmp_path).worker_services == [every, every]
    assert config_from_env({"SHOPSITE_DB": "postgres", "SHOPSITE_WORKERS": "orders"},
                           base_dir=tmp_path).worker_services == ["orders"]
    with pytest.raises(ValueError, match="not supported"):
        config_from_env({"SHOPSITE_DB": "postgresql"}, base_dir=tmp_path)  # a typo never means SQLite


def test_a_code_built_stack_gets_postgres_databases_of_its_own(tmp_path: Path) -> None:
    extra = {"SHOPSITE_DB": "postgres", "DATABASE_URL": "postgres://u:pw@db.example:6543/shop"}
    stack = Stack(_cfg(tmp_path, extra_env=extra))
    stack._prepare_databases()
    url = stack._database_env["DATABASE_URL"]
    assert url.startswith(f"postgres://u:pw@db.example:6543/test_shopsite_stack_{os.getpid()}_")
    base = url.rsplit("/", 1)[1]
    assert sorted(stack._owned_databases) == sorted(
        [base] + [f"{base}_{a}" for a in ("order_service", "inventory_service", "payment_service",
                                            "shipping_service", "read_model_service")])
    # make run's stack keeps DATABASE_URL's databases and never drops them.
    kept = Stack(StackConfig(base_dir=tmp_path, var_dir=tmp_path, extra_env=extra, isolated_databases=False))
    kept._prepare_databases()
    assert kept._database_env == {} and kept._owned_databases == []


def test_mongomock_cannot_back_a_stack_of_processes(tmp_path: Path) -> None:
    stack = Stack(_cfg(tmp_path, extra_env={"SHOPSITE_DB": "mongomock"}))
    with pytest.raises(RuntimeError, match="in-process test mode"):
        stack._prepare_databases()


def test_resolve_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stackmod, "port_open", lambda host, port, timeout=0.5: True)
    base = StackConfig(base_dir=tmp_path, var_dir=tmp_path)
    assert resolve_redis(base) == "redis://127.0.0.1:6379/0"
    # Tests isolate themselves from the machine's redis even when it is there.
    assert resolve_redis(StackConfig(base_dir=tmp_path, var_dir=tmp_path, force_embedded_redis=True)) is None
    explicit = StackConfig(base_dir=tmp_path, var_dir=tmp_path, redis_url="redis://x:1/0", force_embedded_redis=True)
    assert resolve_redis(explicit) == "redis://x:1/0"
    monkeypatch.setattr(stackmod, "port_open", lambda host, port, timeout=0.5: False)
    assert resolve_redis(base) is None


def test_embedded_infrastructure_starts_and_stops(tmp_path: Path) -> None:
    import redis
    from confluent_kafka.admin import AdminClient

    s = Stack(_cfg(tmp_path))
    s.start_infrastructure(timeout=30)
    try:
        assert s.kafka_embedded and s.redis_embedded
        pids = {name: s.pid(name) for name in ("kafka", "redis")}
        assert all(_alive(p) for p in pids.values())

        meta = AdminClient({"bootstrap.servers": s.kafka_bootstrap}).list_topics(timeout=15)
        assert meta.brokers, "broker answered metadata without brokers"
        assert redis.Redis.from_url(s.redis_url).ping()

        env = s.env()
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == s.kafka_bootstrap
        assert env["REDIS_URL"] == s.redis_url
        assert env["DJANGO_SETTINGS_MODULE"] == "shopsite.settings"
        assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "var" / "prometheus")
        assert (tmp_path / "var" / "prometheus").is_dir()
        assert (tmp_path / "logs" / "kafka.log").exists()

        # restart keeps the address; the new process serves again
        s.restart("redis")
        assert s.pid("redis") != pids["redis"]
        assert not _alive(pids["redis"])
        assert redis.Redis.from_url(s.redis_url).ping()
    finally:
        s.stop()
    assert _wait_dead(s._spawned) == []
    s.stop()  # idempotent


def test_failed_start_stops_what_it_started(tmp_path: Path) -> None:
    # No manage.py in tmp_path: `manage.py migrate_all` fails after the
    # broker and redis are up; both must be gone afterwards.
    s = Stack(_cfg(tmp_path))
    with pytest.raises(RuntimeError, match="migrate_all") as info:
        s.start(timeout=30)
    assert "manage.py" in str(info.value)  # the tail of the failing command's output
    assert len(s._spawned) == 2
    assert _wait_dead(s._spawned) == []


def test_child_dying_during_start_is_reported(tmp_path: Path) -> None:
    # A manage.py that succeeds, but no shopsite package under base_dir: the
    # app children die at import; start() must notice, report and clean up.
    (tmp_path / "manage.py").write_text("import sys; sys.exit(0)\n")
    env_before = dict(os.environ)
    s = Stack(_cfg(tmp_path, port=0, worker_services=["orders"]))
    with pytest.raises(RuntimeError, match="died during start") as info:
        s.start(timeout=60)
    assert "exited with code" in str(info.value) or "killed by signal" in str(info.value)
    assert "Error" in str(info.value)  # traceback tail of the failing child
    assert len(s._spawned) == 5  # kafka, redis, daphne, worker-0, beat
    assert _wait_dead(s._spawned) == []
    assert dict(os.environ) == env_before


def test_a_self_connected_socket_is_not_a_listener(monkeypatch) -> None:
    """Linux can answer a connect to a free ephemeral port with the socket itself."""
    import socket

    from shopsite import stack

    class SelfConnected:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def getsockname(self):
            return ("127.0.0.1", 40000)

        def getpeername(self):
            return ("127.0.0.1", 40000)

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: SelfConnected())
    assert stack.port_open("127.0.0.1", 40000) is False
