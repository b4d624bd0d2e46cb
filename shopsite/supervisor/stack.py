"""The Stack: one running shopsite system, its children started, watched, restarted and stopped.

See the package docstring (shopsite/supervisor/__init__.py) for the public
interface and the layout of a running stack.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from shopsite.supervisor import binaries, readiness, restarts
from shopsite.supervisor.config import LOCALHOST, StackConfig
from shopsite.supervisor.databases import StackDatabases
from shopsite.supervisor.processes import (TIER_APP, TIER_KAFKA, TIER_REDIS, Child, die_with_parent, reap, signal_process,
                                           spawn, tail_lines, terminate)
from shopsite.supervisor.sockets import free_port, listen, port_open

WATCH_INTERVAL_SECONDS = 0.2


def resolve_redis(config: StackConfig) -> str | None:
    """The Redis URL to use, or None when an embedded redis-server must be started."""
    if config.redis_url:
        return config.redis_url
    if not config.force_embedded_redis and port_open(LOCALHOST, 6379):
        return f"redis://{LOCALHOST}:6379/0"
    return None


@dataclass(frozen=True)
class Death:
    """A child that exited without being asked to, as the supervisor saw it."""

    name: str
    pid: int
    exit_code: int | None  # negative: killed by that signal
    at: float  # time.time()
    restart_in: float | None  # seconds; None: not restarted (crash loop, or stopping)
    description: str  # how it ended and the last lines of its output


class Stack:
    def __init__(self, config: StackConfig):
        self.config = config
        self.port: int = config.port
        self.url: str = f"http://{LOCALHOST}:{self.port}"
        self.kafka_bootstrap: str = config.kafka_bootstrap or ""
        self.redis_url: str = config.redis_url or ""
        self.kafka_embedded = False
        self.redis_embedded = False
        self.databases = StackDatabases(config.merged_environ(), config.isolated_databases)
        self.backend = self.databases.backend
        self.failure: str | None = None  # why the supervisor gave up (a crash loop), once it has
        self._children: dict[str, Child] = {}  # insertion order == start order
        self._spawned: list[int] = []
        self._deaths: list[Death] = []
        self._lock = threading.RLock()
        self._listener: socket.socket | None = None
        self._infra_started = False
        self._supervising = False
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._atexit_registered = False
        self._truncated_logs: set[str] = set()

    # ---- context manager -------------------------------------------------

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what the stack is -----------------------------------------------

    @property
    def base_url(self) -> str:
        return self.url

    @property
    def worker_groups(self) -> list[str]:
        """One worker process per entry; a service deployed alone has one worker for itself."""
        return [self.config.service] if self.config.service else list(self.config.worker_services)

    @property
    def web_names(self) -> list[str]:
        return [f"web-{n}" for n in range(self.config.web_count)]

    @property
    def worker_names(self) -> list[str]:
        return [f"worker-{n}" for n in range(len(self.worker_groups))]

    @property
    def _suffix(self) -> str:
        # Services deployed alone may share a var dir (their SQLite files live
        # side by side); their metrics and beat schedule must not.
        return f"-{self.config.service}" if self.config.service else ""

    @property
    def prometheus_dir(self) -> Path:
        return self.config.var_dir / f"prometheus{self._suffix}"

    def env(self) -> dict[str, str]:
        """The environment of the system's processes: also right for `manage.py` commands run against it."""
        if not self._infra_started:
            raise RuntimeError("Stack.env() needs start() (or start_infrastructure()) first")
        env = self.config.merged_environ()
        env.update(self.databases.env)
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

    def names(self) -> list[str]:
        return list(self._children)

    def pid(self, name: str) -> int:
        """The PID of the child's current process (a restart changes it)."""
        return self._child(name).pid

    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self._children.items() if child.popen is not None}

    def spawned_pids(self) -> list[int]:
        """Every PID this stack ever started, restarts included: for leak checks after stop()."""
        return list(self._spawned)

    def argv(self, name: str) -> list[str]:
        return list(self._child(name).argv)

    def exit_code(self, name: str) -> int | None:
        """The current process's exit code; None while it runs."""
        return self._child(name).exit_code()

    def deaths(self, name: str | None = None) -> list[Death]:
        """Every unexpected exit seen so far, oldest first (a stop asked for is not a death)."""
        return [d for d in self._deaths if name is None or d.name == name]

    def restart_count(self, name: str) -> int:
        return self._child(name).restarts

    def dead_children(self) -> list[str]:
        """Children not running now that should be (dead, or waiting out their restart delay)."""
        return [c.name for c in self._children.values() if not c.held and c.exited()]

    def describe_death(self, name: str) -> str:
        child = self._child(name)
        if not child.exited():
            recorded = self.deaths(name)
            return recorded[-1].description if recorded else f"{name} (pid {child.pid}) is running"
        return f"{child.describe_exit()}; last lines of its output:\n{child.tail()}"

    # ---- starting and stopping --------------------------------------------

    def start(self, timeout: float = 90) -> None:
        """Start everything and return once the system says it is ready (GET /health/ready is 200)."""
        deadline = time.monotonic() + timeout
        self._stopping.clear()
        self.failure = None
        try:
            self.start_infrastructure(timeout=timeout)
            self._listener = listen(LOCALHOST, self.port, web_processes=self.config.web_count)
            self.port = int(self._listener.getsockname()[1])
            self.url = f"http://{LOCALHOST}:{self.port}"
            self.databases.prepare()
            self._run_command("migrate_all", deadline)  # creates missing PostgreSQL databases first
            self._run_command("ensure_topics", deadline)
            for name, argv in self.app_commands():
                fds = (self._listener.fileno(),) if name.startswith("web-") else ()
                self._spawn(Child(name=name, argv=argv, tier=TIER_APP, env=self._app_env(name), pass_fds=fds))
            self._wait(deadline, "the system (GET /health/ready)", lambda: readiness.system_ready(self.url))
        except BaseException:
            self.stop()
            raise
        self.watch()

    def watch(self) -> None:
        """Begin restarting children that die: start() does it once the system is ready.

        A death before that is a failed start, reported by start(). After
        start_infrastructure() alone, call it to have the broker and Redis watched.
        """
        self._supervising = True
        if self.config.watch_in_background and (self._watcher is None or not self._watcher.is_alive()):
            self._stopping.clear()
            self._watcher = threading.Thread(target=self._watch, name="stack-watcher", daemon=True)
            self._watcher.start()

    def start_infrastructure(self, timeout: float = 30) -> None:
        """The var dir, the Kafka broker and Redis (embedded unless given). Idempotent."""
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
            self._write_metrics()

            if self.config.kafka_bootstrap:
                self.kafka_bootstrap = self.config.kafka_bootstrap
            else:
                port = free_port()
                self.kafka_bootstrap = f"{LOCALHOST}:{port}"
                self.kafka_embedded = True
                self._spawn(Child(name="kafka", argv=binaries.tansu_argv(port, LOCALHOST), tier=TIER_KAFKA,
                                  env=self.config.merged_environ()))
                self._wait(deadline, "kafka", lambda: (readiness.kafka_answers(self.kafka_bootstrap), "no answer"))

            resolved = resolve_redis(self.config)
            if resolved is not None:
                self.redis_url = resolved
            else:
                port = free_port()
                redis_dir = self.config.var_dir / "redis"
                redis_dir.mkdir(parents=True, exist_ok=True)
                self.redis_url = f"redis://{LOCALHOST}:{port}/0"
                self.redis_embedded = True
                self._spawn(Child(name="redis", argv=binaries.redis_argv(port, LOCALHOST, redis_dir),
                                  tier=TIER_REDIS, env=self.config.merged_environ()))
                self._wait(deadline, "redis", lambda: (readiness.redis_answers(self.redis_url), "no PING answer"))
            self._infra_started = True
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every child (web and workers first, Redis, then the broker) and drop the stack's databases."""
        self._supervising = False  # a watcher round that has not taken the lock yet does nothing
        self._stopping.set()
        with self._lock:
            running = [c for c in self._children.values() if c.popen is not None and c.popen.returncode is None]
            for tier in sorted({c.tier for c in running}, reverse=True):
                self._terminate([c for c in reversed(running) if c.tier == tier])
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._infra_started = False
            self.databases.drop()
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False
        # Joined only now: children the watcher restarted die with it (PDEATHSIG follows the
        # spawning thread), and they must be stopped in order above, not all at once here.
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=10)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until GET /health/ready is 200: dependencies reachable and every consumer group assigned."""
        self._wait(time.monotonic() + timeout, "the system (GET /health/ready)",
                   lambda: readiness.system_ready(self.url), must_stay_alive=False)

    # ---- one child ----------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send `sig` to the child's process (as `kill -9 PID` would); returns that PID.

        Not a stop: the supervisor sees the death and restarts the child.
        """
        child = self._child(name)
        pid = child.pid
        signal_process(child, sig)
        return pid

    def wait_running(self, name: str, not_pid: int | None = None, timeout: float = 60) -> int:
        """Until the child runs under a PID other than `not_pid` (i.e. it was restarted); returns the PID."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                child = self._child(name)
                if child.popen is not None and child.pid != not_pid and not child.exited():
                    return child.pid
            if self.failure:
                raise RuntimeError(f"the supervisor gave up: {self.failure}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not running again within {timeout:.0f}s")
            time.sleep(0.05)

    def stop_child(self, name: str) -> None:
        """Stop the child on purpose: it stays stopped (no restart) until start_child()."""
        with self._lock:
            child = self._child(name)
            child.held = True
            child.restart_at = None
            if child.popen is not None and child.popen.returncode is None:
                self._terminate([child])

    def start_child(self, name: str, timeout: float = 60) -> None:
        """Start a stopped child again with the same command, environment and ports."""
        with self._lock:
            child = self._child(name)
            if child.popen is not None and not child.exited():
                raise RuntimeError(f"{name} is still running (pid {child.pid})")
            if child.popen is not None:
                self._terminate([child])  # reap the dead one and sweep its group
            child.held = False
            child.restart_at = None
            self._spawn(child)
        deadline = time.monotonic() + timeout
        # Other children may be dying and coming back meanwhile: only this one's readiness counts.
        if name == "kafka":
            self._wait(deadline, name, lambda: (readiness.kafka_answers(self.kafka_bootstrap), "no answer"),
                       must_stay_alive=False)
        elif name == "redis":
            self._wait(deadline, name, lambda: (readiness.redis_answers(self.redis_url), "no PING answer"),
                       must_stay_alive=False)

    def restart(self, name: str, timeout: float = 60) -> None:
        """Stop the child gracefully (SIGTERM, then SIGKILL after the grace period) and start it again."""
        self.stop_child(name)
        self.start_child(name, timeout=timeout)

    # ---- supervision --------------------------------------------------------

    def supervise_once(self) -> None:
        """One round of watching: record deaths, restart what is due, give up on a crash loop.

        A code-built stack runs this from its watcher thread; the command line from its main loop.
        """
        if not self._supervising:
            return
        with self._lock:
            now = time.monotonic()
            for child in list(self._children.values()):
                if not self._supervising:
                    break
                if child.held or child.popen is None:
                    continue
                if child.restart_at is None and child.exited():
                    self._on_death(child, now)
                if child.restart_at is not None and now >= child.restart_at:
                    self._respawn(child)
        if self.failure is not None and self._infra_started:
            self._say(f"shopsite: {self.failure}")
            self._say("shopsite: stopping everything")
            self.stop()

    def _on_death(self, child: Child, now: float) -> None:
        code = child.exit_code()
        pid = child.pid
        description = f"{child.describe_exit()}; last lines of its output:\n{child.tail()}"
        reap(child)  # frees the PID; the zombie is not needed any more
        if child.tier == TIER_APP:
            self._drop_live_gauges(pid)
        child.death_times.append(now)
        decision = restarts.decide(child.death_times, now, self.config.restart)
        child.death_times = restarts.recent(child.death_times, now, self.config.restart)
        self._deaths.append(Death(child.name, pid, code, time.time(),
                                  decision.delay if decision.restart else None, description))
        self._write_metrics()
        policy = self.config.restart
        if decision.crash_loop:
            self._supervising = False
            self.failure = (f"{child.name} died {decision.recent_deaths} times within "
                            f"{policy.window_seconds:.0f}s (crash loop); last: {description}")
            return
        child.restart_at = now + decision.delay
        self._say(f"shopsite: {child.describe_exit()}; restarting it in {decision.delay:.1f}s "
                  f"(death {decision.recent_deaths} of {policy.max_deaths} allowed within "
                  f"{policy.window_seconds:.0f}s)")

    def _respawn(self, child: Child) -> None:
        child.restart_at = None
        child.restarts += 1
        try:
            self._spawn(child)
        except OSError as exc:
            child.popen = None
            self.failure = f"could not start {child.name} again: {exc}"
            self._supervising = False
            return
        self._write_metrics()
        self._say(f"shopsite: {child.name} restarted (pid {child.pid})")

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_INTERVAL_SECONDS):
            try:
                self.supervise_once()
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive one bad round
                self._say(f"shopsite: supervisor error: {type(exc).__name__}: {exc}")

    def _write_metrics(self) -> None:
        children = self._children.values()
        deaths: dict[str, int] = {}
        for death in self._deaths:
            deaths[death.name] = deaths.get(death.name, 0) + 1
        restarts.write_metrics(self.prometheus_dir, {c.name: c.restarts for c in children},
                               {c.name: deaths.get(c.name, 0) for c in children})

    def _say(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        if self.config.log_dir is not None:
            with (self.config.log_dir / "supervisor.log").open("a") as f:
                f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")

    # ---- internals -------------------------------------------------------

    def app_commands(self) -> list[tuple[str, list[str]]]:
        """The application processes, in start order: web-N (on the supervisor's port), worker-N, beat.

        Every one of these writes JSON lines only: daphne's text access log is
        off (-v 0; our middleware logs each request), Celery's banners are off
        (--quiet), and log levels come from LOG_LEVEL, not from --loglevel.
        shopsite.web is daphne (same arguments) that drains requests on SIGTERM.
        """
        py = sys.executable
        fd = self._listener.fileno() if self._listener is not None else -1
        cmds = [(name, [py, "-m", "shopsite.web", "-v", "0", "--fd", str(fd), "shopsite.asgi:application"])
                for name in self.web_names]
        for n, services in enumerate(self.worker_groups):
            cmds.append((f"worker-{n}", [
                py, "-m", "celery", "-A", "shopsite", "--quiet", "worker",
                f"--services={services}",
                "--pool=threads", "--concurrency=4",
                f"--hostname=worker{n}{self._suffix}@%h",
                "--without-gossip", "--without-mingle",
            ]))  # fmt: skip
        cmds.append(("beat", [
            py, "-m", "celery", "-A", "shopsite", "--quiet", "beat",
            f"--schedule={self.config.var_dir / f'celerybeat-schedule{self._suffix}'}",
        ]))  # fmt: skip
        return cmds

    def _app_env(self, name: str) -> dict[str, str]:
        # Every JSON log line says which process wrote it.
        return {**self.env(), "SHOPSITE_PROCESS": name}

    def _child(self, name: str) -> Child:
        try:
            return self._children[name]
        except KeyError:
            raise KeyError(f"no child named {name!r}; known: {', '.join(self._children) or 'none'}") from None

    def _register_atexit(self) -> None:
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True

    def _log_path(self, name: str) -> Path | None:
        return None if self.config.log_dir is None else self.config.log_dir / f"{name}.log"

    def _open_log(self, name: str) -> IO[bytes] | None:
        path = self._log_path(name)
        if path is None:
            return None
        # Fresh log per stack, appended across restarts so a crash stays readable.
        mode = "ab" if name in self._truncated_logs else "wb"
        self._truncated_logs.add(name)
        return path.open(mode)

    def _spawn(self, child: Child) -> None:
        current = threading.current_thread()
        # PDEATHSIG follows the spawning thread: only threads that outlive their children may set it.
        lasting = current is threading.main_thread() or current is self._watcher
        preexec = die_with_parent(os.getpid()) if lasting else None
        spawn(child, self.config.base_dir, self._open_log(child.name), self._log_path(child.name), preexec)
        self._children[child.name] = child
        self._spawned.append(child.pid)

    def _terminate(self, children: list[Child]) -> None:
        pids = [c.pid for c in children if c.popen is not None]
        terminate(children)
        for child, pid in zip(children, pids):
            if child.tier == TIER_APP:
                self._drop_live_gauges(pid)

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
            proc = subprocess.run(argv, cwd=self.config.base_dir, env=self._app_env(command),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=remaining)
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
            raise RuntimeError(f"`manage.py {command}` {why}; last lines of its output:\n{tail_lines(output)}")

    def _check_alive(self) -> None:
        for name in self.dead_children():
            raise RuntimeError(f"child process died during start: {self.describe_death(name)}")

    def _wait(self, deadline: float, what: str, probe: readiness.Probe, must_stay_alive: bool = True) -> None:
        try:
            readiness.wait_until(probe, deadline, what, self._check_alive if must_stay_alive else lambda: None)
        except TimeoutError as exc:
            tails = "\n".join(f"--- {c.name}:\n{c.tail(15)}" for c in self._children.values()
                              if c.tier == TIER_APP or c.name == what)
            raise RuntimeError(f"{exc}; last lines of the processes' output:\n{tails}") from None

