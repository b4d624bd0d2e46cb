"""daphne with a graceful stop: ``python -m shopsite.web`` takes daphne's arguments.

Plain daphne, on SIGTERM/SIGINT, cancels every request in flight at once:
a client that was placing an order gets a reset connection and cannot tell
whether the order exists. This server stops listening first, lets requests
in flight finish for up to settings.WEB_DRAIN_SECONDS (SHOPSITE_DRAIN_SECONDS,
default 10), and only then cancels what is left (long-lived streams) and exits.

The supervisor runs several of these on one listening socket it opened
(``--fd``, see shopsite/supervisor/sockets.py): each accepts connections
from the shared socket, so the web tier uses every core, and "stops
listening" here closes only this process's copy: the others keep serving.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from daphne.server import Server  # installs the asyncio reactor: import before anything twisted
from daphne.cli import CommandLineInterface  # noqa: I001
from twisted.internet import defer, reactor

log = logging.getLogger("shopsite.web")

POLL_SECONDS = 0.05


class DrainingServer(Server):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ports: list[Any] = []

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        self._ports.append(port)
        _accept_one_at_a_time(port)

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


def _accept_one_at_a_time(port: Any) -> None:
    """Take one connection per wake-up from a socket shared with other web processes.

    Twisted accepts up to 100+ waiting connections per wake-up (and grows the
    number while they keep coming), so on a shared socket the first process to
    wake takes a whole burst of clients, e.g. all 32 of a load generator, and
    keeps them for as long as they keep their connections alive. One at a time,
    every process woken races for each connection and the idle ones win more.
    """
    if not hasattr(port, "numberAccepts"):
        return  # not a TCP port
    read = port.doRead

    def do_read() -> Any:
        port.numberAccepts = 1
        return read()

    port.doRead = do_read


def main(argv: list[str] | None = None) -> None:
    from shopsite.bodylimit import install_in_daphne

    # Bodies over the limit are refused while they arrive, never spooled to disk by Twisted.
    install_in_daphne()
    cli = CommandLineInterface()
    cli.server_class = DrainingServer
    cli.run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
