"""Child processes: spawning, logging, watching and stopping them by PID, never by name.

Every child runs in its own session (so a Ctrl-C on the terminal reaches
only the supervisor, which then stops children in order) and is signalled
by process group: the machine may run its own redis-server, which must never
be hit. A child's zombie is kept until the supervisor reaps it on purpose,
so its PID (and group id) cannot be recycled under a later signal.
"""

from __future__ import annotations

import collections
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STOP_GRACE_SECONDS = 15.0
LOG_TAIL_LINES = 40

# Tiers are stopped in reverse order; processes within one tier are stopped
# together so N workers share one grace period instead of N * 15 s.
TIER_KAFKA = 0
TIER_REDIS = 1
TIER_APP = 2


def tail_lines(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """Child-side hook: SIGTERM the child if the supervisor is SIGKILLed.

    atexit cannot run on SIGKILL; this is the last line of defence against
    orphaned brokers and workers. Linux ties PDEATHSIG to the spawning
    *thread*, so it is only used from threads that outlive their children
    (the main thread, the stack's watcher thread).
    """

    def hook() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # parent already died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


@dataclass
class Child:
    """One named child; a restart replaces `popen` and keeps the name, command, environment and log."""

    name: str
    argv: list[str]
    tier: int
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    ring: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))
    reader: threading.Thread | None = None
    # Supervision state (owned by Stack).
    held: bool = False  # stopped on purpose: not restarted until asked
    restart_at: float | None = None  # monotonic time a restart is due
    death_times: list[float] = field(default_factory=list)  # monotonic
    restarts: int = 0

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen.pid

    def exited(self) -> bool:
        """Whether the child ended, without reaping it (see the module docstring)."""
        if self.popen is None or self.popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def exit_code(self) -> int | None:
        """The exit code, negative for a signal (-9: SIGKILL); None while running."""
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

    def describe_exit(self) -> str:
        code = self.exit_code()
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return f"{self.name} (pid {self.pid}) {how}"

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.reader is not None:
            self.reader.join(timeout=2)  # let the pipe drain so the tail is complete
        if self.log_path is not None and self.log_path.exists():
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                return tail_lines(f.read().decode("utf-8", "replace"), lines)
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


def spawn(child: Child, cwd: Path, log: IO[bytes] | None, log_path: Path | None,
          preexec: Callable[[], None] | None) -> None:
    """Start (or start again) the child: its output goes to its log file, or prefixed to our stdout."""
    try:
        child.popen = subprocess.Popen(
            child.argv,
            cwd=cwd,
            env=child.env,
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
            pass_fds=child.pass_fds,
        )
    finally:
        if log is not None:
            log.close()
    child.log_path = log_path
    child.reader = None
    if log is None:
        assert child.popen.stdout is not None
        child.reader = threading.Thread(target=_pump, args=(child.popen.stdout, child.name, child.ring),
                                        name=f"pump-{child.name}", daemon=True)
        child.reader.start()


def signal_group(child: Child, sig: int) -> None:
    if child.popen is None or child.popen.returncode is not None:
        return  # reaped: the PID may already belong to someone else
    try:
        os.killpg(child.popen.pid, sig)  # start_new_session: pgid == pid
    except (ProcessLookupError, PermissionError):
        signal_process(child, sig)


def signal_process(child: Child, sig: int) -> None:
    """The child's own process only (its helpers, if any, are left alone)."""
    if child.popen is None or child.popen.returncode is not None:
        return
    try:
        os.kill(child.popen.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap(child: Child) -> None:
    """Sweep the dead child's group (helpers may linger) and reap it; its PID is free after this."""
    signal_group(child, signal.SIGKILL)  # the leader's zombie still pins the group id
    if child.popen is not None:
        try:
            child.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    if child.reader is not None:
        child.reader.join(timeout=2)


def terminate(children: Sequence[Child], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the groups, wait up to the grace period together, then SIGKILL and reap."""
    for child in children:
        signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    pending = list(children)
    while pending and time.monotonic() < deadline:
        pending = [c for c in pending if not c.exited()]
        if pending:
            time.sleep(0.05)
    for child in children:
        reap(child)
