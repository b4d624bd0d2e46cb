"""The supervisor on real processes, without the application: the embedded broker and Redis, failed starts."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from shopsite.supervisor import Stack, StackConfig

import pytest
from tests.system.waiting import alive as _alive

pytestmark = pytest.mark.backends("sqlite")




def _wait_dead(pids: list[int], timeout: float = 5) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    return alive


def _cfg(tmp_path: Path, **kw: object) -> StackConfig:
    return StackConfig(base_dir=tmp_path, var_dir=tmp_path / "var", log_dir=tmp_path / "logs",
                       force_embedded_redis=True, **kw)  # type: ignore[arg-type]


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
        assert s.deaths() == []  # a restart asked for is not a death
    finally:
        s.stop()
    assert _wait_dead(s.spawned_pids()) == []
    s.stop()  # idempotent


def test_failed_start_stops_what_it_started(tmp_path: Path) -> None:
    # No manage.py in tmp_path: `manage.py migrate_all` fails after the
    # broker and redis are up; both must be gone afterwards.
    s = Stack(_cfg(tmp_path))
    with pytest.raises(RuntimeError, match="migrate_all") as info:
        s.start(timeout=30)
    assert "manage.py" in str(info.value)  # the tail of the failing command's output
    assert len(s.spawned_pids()) == 2
    assert _wait_dead(s.spawned_pids()) == []


def test_child_dying_during_start_is_reported_not_restarted(tmp_path: Path) -> None:
    # A manage.py that succeeds, but no shopsite package under base_dir: the
    # app children die at import; start() must notice, report and clean up.
    (tmp_path / "manage.py").write_text("import sys; sys.exit(0)\n")
    env_before = dict(os.environ)
    s = Stack(_cfg(tmp_path, port=0, worker_services=["orders"], web_processes=1))
    with pytest.raises(RuntimeError, match="died during start") as info:
        s.start(timeout=60)
    assert "exited with code" in str(info.value) or "killed by signal" in str(info.value)
    assert "Error" in str(info.value)  # traceback tail of the failing child
    assert len(s.spawned_pids()) == 5  # kafka, redis, web-0, worker-0, beat: nothing restarted
    assert _wait_dead(s.spawned_pids()) == []
    assert dict(os.environ) == env_before


def test_the_embedded_broker_is_restarted_on_the_same_port_when_it_dies(tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient

    s = Stack(_cfg(tmp_path))
    s.start_infrastructure(timeout=30)
    try:
        s.watch()  # start() would, once the application is ready; there is none here
        victim = s.kill("kafka", signal.SIGKILL)
        s.wait_running("kafka", not_pid=victim, timeout=30)
        assert [(d.name, d.pid, d.exit_code) for d in s.deaths()] == [("kafka", victim, -signal.SIGKILL)]
        assert s.restart_count("kafka") == 1
        meta = AdminClient({"bootstrap.servers": s.kafka_bootstrap}).list_topics(timeout=15)
        assert meta.brokers
    finally:
        s.stop()
    assert _wait_dead(s.spawned_pids()) == []
