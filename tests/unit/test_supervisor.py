"""Unit tests for the process supervisor's pure parts (no Django, no process started)."""

from __future__ import annotations

import os
import socket
import time
import subprocess
import sys
from pathlib import Path

import pytest

from shopsite.supervisor import RestartPolicy, Stack, StackConfig, config_from_env, free_port, parse_workers
from shopsite.supervisor import resolve_redis, restarts, sockets
from shopsite.supervisor import stack as stackmod
from shopsite.supervisor.databases import StackDatabases

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")

ROOT = Path(__file__).resolve().parent.parent.parent


def _cfg(tmp_path: Path, **kw: object) -> StackConfig:
    return StackConfig(base_dir=tmp_path, var_dir=tmp_path / "var", log_dir=tmp_path / "logs",
                       force_embedded_redis=True, **kw)  # type: ignore[arg-type]


def test_importable_without_django_configured() -> None:
    # The supervisor runs before any settings/database exist.
    code = (
        "import sys, shopsite.supervisor, shopsite.supervisor.cli, shopsite.stack\n"
        "dj = sys.modules.get('django.conf')\n"
        "print(bool(dj and dj.settings.configured))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_the_shared_listening_socket_refuses_a_taken_port_and_picks_one_for_zero() -> None:
    first = sockets.listen("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        assert port > 0 and sockets.port_open("127.0.0.1", port)
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port}"):
            sockets.listen("127.0.0.1", port)
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port}"):
            sockets.listen("127.0.0.1", port, web_processes=2)
        assert sockets.listen_beside(first) is first  # one web process accepts on the supervisor's socket
    finally:
        first.close()


def _accepted(listener: socket.socket) -> int:
    listener.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def test_several_web_processes_listen_on_the_port_each_and_share_its_connections() -> None:
    held = sockets.listen("127.0.0.1", 0, web_processes=2)
    port = held.getsockname()[1]
    own = [sockets.listen_beside(held), sockets.listen_beside(held)]
    try:
        assert not held.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)  # it only holds the port
        with pytest.raises(RuntimeError, match="another program listens there"):
            sockets.listen("127.0.0.1", port, web_processes=2)  # a second system on the same port
        time.sleep(0.1)
        for s in own:
            _accepted(s)  # that check's own probe
        clients = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(64)]
        time.sleep(0.2)
        counts = [_accepted(s) for s in own]
        # The kernel spreads them by address hash: both get some (all 64 on one: a chance of 2**-63).
        assert sum(counts) == 64 and min(counts) > 0, counts
        own.pop().close()  # a web process that dies or stops listening: the others take every new one
        late = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(16)]
        time.sleep(0.2)
        assert _accepted(own[0]) == 16
        for c in clients + late:
            c.close()
    finally:
        for s in [held, *own]:
            s.close()


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
        {"PORT": "8123", "SHOPSITE_WORKERS": "orders;payment", "REDIS_URL": "redis://h:1/2",
         "SHOPSITE_WEB_PROCESSES": "3"}, base_dir=tmp_path)
    assert cfg.port == 8123
    assert cfg.var_dir == tmp_path / "var"
    assert cfg.worker_services == ["orders", "payment"]
    assert cfg.redis_url == "redis://h:1/2"
    assert cfg.kafka_bootstrap is None
    assert cfg.web_count == 3
    assert cfg.environ["PORT"] == "8123"  # what the children inherit: the snapshot, not os.environ
    assert not cfg.watch_in_background  # the command line watches from its main thread
    default = config_from_env({}, base_dir=tmp_path)
    assert default.port == 8000
    assert default.web_count == len(os.sched_getaffinity(0))  # one web process per core


def test_worker_processes_by_default_split_by_service_on_sqlite(tmp_path: Path) -> None:
    every = "orders,inventory,payment,shipping,readmodel"
    split = config_from_env({}, base_dir=tmp_path).worker_services
    assert split == ["orders,shipping", "inventory,payment", "readmodel"]
    assert sorted(",".join(split).split(",")) == sorted(every.split(","))  # each service exactly once
    assert config_from_env({"SHOPSITE_DB": "postgres"}, base_dir=tmp_path).worker_services == [every, every]
    assert config_from_env({"SHOPSITE_DB": "postgres", "SHOPSITE_WORKERS": "orders"},
                           base_dir=tmp_path).worker_services == ["orders"]
    with pytest.raises(ValueError, match="SHOPSITE_DB=.postgresql.: not one of"):
        config_from_env({"SHOPSITE_DB": "postgresql"}, base_dir=tmp_path)  # a typo never means SQLite


def test_a_code_built_stack_gets_postgres_databases_of_its_own(tmp_path: Path) -> None:
    extra = {"SHOPSITE_DB": "postgres", "DATABASE_URL": "postgres://u:pw@db.example:6543/shop"}
    own = Stack(_cfg(tmp_path, extra_env=extra)).databases
    own.prepare()
    url = own.env["DATABASE_URL"]
    assert url.startswith(f"postgres://u:pw@db.example:6543/test_shopsite_stack_{os.getpid()}_")
    base = url.rsplit("/", 1)[1]
    assert sorted(own.owned) == sorted(
        [base] + [f"{base}_{a}" for a in ("order_service", "inventory_service", "payment_service",
                                            "shipping_service", "read_model_service")])
    # make run's stack keeps DATABASE_URL's databases and never drops them.
    kept = StackDatabases(extra, isolated=False)
    kept.prepare()
    assert kept.env == {} and kept.owned == []


def test_mongomock_cannot_back_a_stack_of_processes(tmp_path: Path) -> None:
    stack = Stack(_cfg(tmp_path, extra_env={"SHOPSITE_DB": "mongomock"}))
    with pytest.raises(RuntimeError, match="in-process test mode"):
        stack.databases.prepare()


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


def test_a_self_connected_socket_is_not_a_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux can answer a connect to a free ephemeral port with the socket itself."""

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
    assert sockets.port_open("127.0.0.1", 40000) is False


# ---- restarts: pure decisions ------------------------------------------------

POLICY = RestartPolicy(max_deaths=5, window_seconds=60, first_delay=0.5, max_delay=10)


def test_the_first_death_is_restarted_after_the_first_delay() -> None:
    decision = restarts.decide([100.0], now=100.0, policy=POLICY)
    assert (decision.restart, decision.delay, decision.recent_deaths) == (True, 0.5, 1)


def test_the_delay_doubles_with_each_death_inside_the_window_and_is_capped() -> None:
    deaths: list[float] = []
    delays = []
    for n in range(4):
        deaths.append(float(n))
        delays.append(restarts.decide(deaths, now=float(n), policy=POLICY).delay)
    assert delays == [0.5, 1.0, 2.0, 4.0]
    capped = RestartPolicy(max_deaths=100, window_seconds=60, first_delay=0.5, max_delay=3)
    assert restarts.decide([0.0] * 10, now=0.0, policy=capped).delay == 3


def test_the_fifth_death_within_the_window_is_a_crash_loop() -> None:
    decision = restarts.decide([0.0, 10.0, 20.0, 30.0, 40.0], now=40.0, policy=POLICY)
    assert decision.crash_loop and not decision.restart and decision.recent_deaths == 5


def test_deaths_older_than_the_window_are_forgotten() -> None:
    # Five deaths, but spread over more than a minute: a flaky process, not a crash loop; backoff starts over.
    deaths = [0.0, 20.0, 40.0, 59.0, 125.0]
    decision = restarts.decide(deaths, now=125.0, policy=POLICY)
    assert decision.restart and decision.recent_deaths == 1 and decision.delay == 0.5
    assert restarts.recent(deaths, 125.0, POLICY) == [125.0]


def test_restart_metrics_are_prometheus_text_with_one_sample_per_child(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    restarts.write_metrics(tmp_path, {"worker-0": 2, "web-1": 0}, {"worker-0": 3, "web-1": 0})
    families = {f.name: f for f in text_string_to_metric_families((tmp_path / restarts.METRICS_FILE).read_text())}
    samples = {(s.name, s.labels["process"]): s.value for f in families.values() for s in f.samples}
    assert samples == {("shopsite_process_restarts_total", "worker-0"): 2,
                       ("shopsite_process_restarts_total", "web-1"): 0,
                       ("shopsite_process_deaths_total", "worker-0"): 3,
                       ("shopsite_process_deaths_total", "web-1"): 0}
    assert families["shopsite_process_restarts"].type == "counter"
    assert [p.name for p in tmp_path.iterdir()] == [restarts.METRICS_FILE]  # no partial file left behind


def test_the_web_processes_share_the_supervisors_socket(tmp_path: Path) -> None:
    stack = Stack(_cfg(tmp_path, web_processes=3, worker_services=["orders,inventory", "payment"]))
    commands = dict(stack.app_commands())
    assert list(commands) == ["web-0", "web-1", "web-2", "worker-0", "worker-1", "beat"]
    assert stack.web_names == ["web-0", "web-1", "web-2"] and stack.worker_names == ["worker-0", "worker-1"]
    for name in stack.web_names:
        assert "--fd" in commands[name] and "-p" not in commands[name]  # each listens beside the supervisor's socket
