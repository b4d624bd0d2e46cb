"""Ports: finding a free one, probing one, and the web tier's listening sockets."""

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


def listen(host: str, port: int, *, web_processes: int = 1) -> socket.socket:
    """The web port, opened once by the supervisor and handed to every web process (--fd).

    One web process: the socket listens and the process accepts on it. It
    lives as long as the supervisor, so a web process that dies or restarts
    takes no connection attempt with it: they wait in the socket's backlog.

    Several: the socket only holds the port (bound, never listening) and each
    web process listens on a socket of its own on that port (listen_beside).
    The kernel spreads new connections evenly over those sockets; on one
    shared socket they went to whichever process woke first, and keep-alive
    clients stay where they landed (one process took three quarters of a
    burst's clients). A process that dies takes with it only the connections
    it had not accepted yet; new ones go to the others.

    Port 0 binds any free port without the race of free_port().
    """
    sock = _socket(port_shared=web_processes > 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _taken(host, port, exc.strerror) from exc
    if web_processes > 1:
        # SO_REUSEPORT also let us bind beside another program's SO_REUSEPORT listener: refuse that.
        if port_open(host, sock.getsockname()[1]):
            sock.close()
            raise _taken(host, port, "another program listens there")
        return sock
    sock.listen(LISTEN_BACKLOG)
    return sock  # handed down with subprocess's pass_fds, which makes it inheritable there only


def listen_beside(given: socket.socket) -> socket.socket:
    """The socket a web process accepts on, given the supervisor's (see listen): that one if it
    listens, else a listening socket of this process's own on its port."""
    if given.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        return given
    own = _socket(port_shared=True)
    own.bind(given.getsockname())
    own.listen(LISTEN_BACKLOG)
    return own


def _socket(*, port_shared: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Rebinding right after a previous run's connections in TIME_WAIT; a live listener still refuses us.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if port_shared:  # by the supervisor's socket and the web processes' own ones; all must say so
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _taken(host: str, port: int, why: str) -> RuntimeError:
    return RuntimeError(f"cannot listen on {host}:{port} ({why}); set PORT to another port")
