"""Ports: finding a free one, probing one, and the web tier's shared listening socket."""

from __future__ import annotations

import socket

from shopsite.supervisor.config import LOCALHOST

LISTEN_BACKLOG = 1024


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


def listen(host: str, port: int) -> socket.socket:
    """The web tier's socket, opened once by the supervisor and inherited by every web process.

    The kernel spreads incoming connections over the processes accepting on
    it, and a web process that dies or restarts takes no connection attempt
    with it: the socket (and its backlog) lives as long as the supervisor.
    Port 0 binds any free port without the race of free_port().
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Rebinding right after a previous run's connections in TIME_WAIT; a live listener still refuses us.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port} ({exc.strerror}); set PORT to another port") from exc
    sock.listen(LISTEN_BACKLOG)
    return sock  # handed down with subprocess's pass_fds, which makes it inheritable there only
