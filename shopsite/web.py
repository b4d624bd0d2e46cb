"""daphne with a graceful stop: ``python -m shopsite.web`` takes daphne's arguments.

Plain daphne, on SIGTERM/SIGINT, cancels every request in flight at once:
a client that was placing an order gets a reset connection and cannot tell
whether the order exists. This server stops listening first, lets requests
in flight finish for up to settings.WEB_DRAIN_SECONDS (SHOPSITE_DRAIN_SECONDS,
default 10), and only then cancels what is left (long-lived streams) and exits.

The supervisor runs several of these on the web port it opened (``--fd``,
see shopsite/supervisor/sockets.py): each listens on a socket of its own on
that port (or on the supervisor's, when it runs one web process alone), so
the kernel spreads connections evenly and the web tier uses every core;
"stops listening" here closes only this process's socket: the others keep
serving.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from typing import Any

from daphne.server import Server  # installs the asyncio reactor: import before anything twisted
from daphne.cli import CommandLineInterface  # noqa: I001
from twisted.internet import defer, reactor

from shopsite.supervisor.sockets import listen_beside  # Django-free

log = logging.getLogger("shopsite.web")

POLL_SECONDS = 0.05


class DrainingServer(Server):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ports: list[Any] = []

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        self._ports.append(port)

    def _in_flight(self) -> list[Any]:
        instances = (details.get("application_instance") for details in self.connections.values())
        return [app for app in instances if app is not None and not app.done()]

    def kill_all_applications(self) -> defer.Deferred:
        """Twisted's before-shutdown trigger: shutdown waits for the Deferred returned here."""
        for port in self._ports:
            port.stopListening()
        from django.conf import settings  # configured by now: daphne loaded the application at start

        drain_seconds = settings.WEB_DRAIN_SECONDS
        started = time.monotonic()
        log.info("stopping: no new connections; draining requests in flight",
                 extra={"inFlight": len(self._in_flight()), "drainSeconds": drain_seconds})
        done: defer.Deferred = defer.Deferred()

        def check() -> None:
            pending = self._in_flight()
            if pending and time.monotonic() - started < drain_seconds:
                reactor.callLater(POLL_SECONDS, check)
                return
            log.info("drained", extra={"cancelled": len(pending),
                                       "waitedSeconds": round(time.monotonic() - started, 3)})
            self._cancel(pending).chainDeferred(done)

        check()
        return done

    @staticmethod
    def _cancel(pending: list[Any]) -> defer.Deferred:
        import asyncio

        for app in pending:
            app.cancel()
        waited = defer.Deferred.fromFuture(asyncio.gather(*pending, return_exceptions=True))
        waited.addErrback(lambda _failure: None)
        return waited


def _own_socket(argv: list[str]) -> list[str]:
    """daphne's arguments with ``--fd`` naming the socket this process accepts on (listen_beside)."""
    if "--fd" not in argv:
        return argv
    at = argv.index("--fd") + 1
    given = socket.socket(fileno=int(argv[at]))
    accepting = listen_beside(given)
    if accepting is not given:
        given.close()  # the supervisor keeps its own copy, holding the port
    return [*argv[:at], str(accepting.detach()), *argv[at + 1:]]


def main(argv: list[str] | None = None) -> None:
    from shopsite.bodylimit import install_in_daphne

    # Bodies over the limit are refused while they arrive, never spooled to disk by Twisted.
    install_in_daphne()
    cli = CommandLineInterface()
    cli.server_class = DrainingServer
    cli.run(_own_socket(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
