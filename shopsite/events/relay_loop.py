"""One long-lived relay per outbox in a worker: wait for a wake-up, drain, repeat.

Replaces a Celery task per commit: the loop holds the outbox's cross-process
claim (relay_lock.try_hold) for as long as it runs, so exactly one process
relays an outbox on PostgreSQL; the others stand by and take over when the
holder's connection goes away. While it holds the claim it registers its
wake-up Event with outbox_signal, so commits in this process wake it
directly and commits elsewhere reach it through Redis.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, connections

from shopsite.events import outbox_signal, relay, relay_lock
from shopsite.jsonlog import log_context
from shopsite.services import BY_ALIAS

log = logging.getLogger(__name__)

STANDBY_SECONDS = 2.0  # how often a loop on stand-by tries to take the claim over
MAX_BACKOFF_SECONDS = 5.0


class RelayLoop:
    def __init__(self, alias: str, *, poll_seconds: float | None = None, batch_size: int | None = None):
        self.alias = alias
        self.poll_seconds = settings.OUTBOX_RELAY_POLL_SECONDS if poll_seconds is None else poll_seconds
        self.batch_size = batch_size or settings.OUTBOX_RELAY_BATCH
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.holding = False

    def stop(self) -> None:
        """Finish: one last drain (rows the final consumer batch committed), then let go."""
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        with log_context(service=BY_ALIAS[self.alias].name):
            try:
                self._run()
            finally:
                self._let_go()
                connections[self.alias].close()

    def _run(self) -> None:
        backoff = 0.0
        self.wake.set()  # start with a drain: rows may have waited while no relay ran
        while True:
            if not self.holding and not self._take_claim():
                if self.stopping.wait(STANDBY_SECONDS):
                    return
                continue
            self.wake.wait(self.poll_seconds)
            self.wake.clear()  # before draining: a commit during the drain sets it again
            final = self.stopping.is_set()
            try:
                _, complete = relay.drain(self.alias, batch_size=self.batch_size)
            except DatabaseError:
                log.warning("relay loop lost its database; retrying", exc_info=True, extra={"db": self.alias})
                self._let_go()
                connections[self.alias].close()  # a broken connection also lost the claim
                complete = False
            except Exception:  # noqa: BLE001 - a relay must outlive a surprise; the rows stay pending
                log.error("relay round failed; retrying", exc_info=True, extra={"db": self.alias})
                complete = False
            if final:
                return
            if complete:
                backoff = 0.0
            else:
                # Broker or database down: try again soon, not in a tight loop.
                backoff = min(MAX_BACKOFF_SECONDS, max(0.2, backoff * 2))
                self.stopping.wait(backoff)
                self.wake.set()

    def _take_claim(self) -> bool:
        try:
            self.holding = relay_lock.try_hold(self.alias)
        except DatabaseError:
            log.warning("relay loop could not reach its database", exc_info=True, extra={"db": self.alias})
            connections[self.alias].close()
            self.holding = False
        if self.holding:
            outbox_signal.register(self.alias, self.wake)
            log.info("relay loop holds the outbox", extra={"db": self.alias})
        else:
            connections[self.alias].close()  # on stand-by: do not keep a database connection for nothing
        return self.holding

    def _let_go(self) -> None:
        if not self.holding:
            return
        self.holding = False
        outbox_signal.unregister(self.alias, self.wake)
        try:
            relay_lock.release(self.alias)
        except DatabaseError:
            pass  # the connection is gone, and the lock with it
