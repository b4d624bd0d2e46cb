"""Wake an outbox's relay loop right after a commit wrote rows to it.

Two paths, both mere hints:
- in the process whose relay loop holds the outbox (a worker's own
  consumers committing), a threading.Event: no I/O at all;
- from anywhere else (the web processes placing orders, a worker whose loop
  is on stand-by, `loadgen --direct`), one Redis PUBLISH on the outbox's
  channel; the relay process's listener turns it into the same Event.

A lost hint (Redis down) delays rows, never loses them: a relay loop also
looks every OUTBOX_RELAY_POLL_SECONDS, and beat's sweep backs that up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import redis
from django.conf import settings

log = logging.getLogger(__name__)

_local: dict[str, threading.Event] = {}  # alias -> wake-up of the loop relaying it in this process
_client: redis.Redis | None = None
_client_lock = threading.Lock()
_quiet_until = 0.0  # after a failed PUBLISH, skip Redis for a second: a request must not wait on it
QUIET_SECONDS = 1.0


def channel(alias: str) -> str:
    return f"shopsite:outbox:{alias}"


def register(alias: str, wake: threading.Event) -> None:
    """The calling loop relays `alias` in this process from now on: local commits set `wake`."""
    _local[alias] = wake


def unregister(alias: str, wake: threading.Event) -> None:
    if _local.get(alias) is wake:
        del _local[alias]


def relayed_here(alias: str) -> bool:
    return alias in _local


def announce(alias: str) -> None:
    """Rows were committed to `alias`'s outbox: wake its relay (never raises)."""
    wake = _local.get(alias)
    if wake is not None:
        wake.set()
        return
    global _quiet_until
    if time.monotonic() < _quiet_until:
        return
    try:
        _redis().publish(channel(alias), b"1")
    except redis.RedisError as exc:
        _quiet_until = time.monotonic() + QUIET_SECONDS
        log.warning("could not signal the outbox relay (it finds the rows by polling)",
                    extra={"db": alias, "error": str(exc)})


def _redis() -> redis.Redis:
    global _client
    with _client_lock:
        if _client is None:
            # Short timeouts: this runs on a request's path; a slow Redis means "use the poll".
            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25)
        return _client


class Listener:
    """A worker's thread that turns Redis wake-ups for `aliases` into their loops' Events."""

    def __init__(self, aliases: Iterable[str], stop: threading.Event):
        self.channels = {channel(a): a for a in aliases}
        self.stop = stop

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._listen()
            except (redis.RedisError, OSError) as exc:
                log.warning("outbox wake-up listener lost Redis; retrying (relays keep polling)",
                            extra={"error": str(exc)})
                self.stop.wait(1.0)

    def _listen(self) -> None:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1.0, socket_keepalive=True)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(*self.channels)
            while not self.stop.is_set():
                message = pubsub.get_message(timeout=0.5)
                if message is None:
                    continue
                name = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
                wake = _local.get(self.channels.get(name, ""))
                if wake is not None:
                    wake.set()
        finally:
            pubsub.close()
            client.close()
