"""JSON log lines with the context of whatever is being processed.

Every line is one JSON object on stdout with at least ``ts``, ``level``,
``process`` (which OS process wrote it: the stack's child name, e.g.
``worker-0``), ``service`` (which of the five services' code was running,
else the process name) and ``message``.

Two ways to attach context without passing it around:

* ``log_context(**fields)``: a block-scoped binding. The consumer runtime
  binds eventId / correlationId / ... for the duration of one message, so
  every line a handler writes carries them.
* ``request_scope()`` + ``bind(**fields)``: a per-request bag. The HTTP
  middleware opens the scope; a view binds orderId / correlationId once it
  knows them, and the middleware's access-log line carries them too.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from shopsite.config import Config  # Django-free

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})
# A mutable dict per request, shared by reference: a sync view runs in another
# thread (asgiref copies the context), so only in-place updates reach the middleware.
_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("log_request", default=None)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


@contextlib.contextmanager
def request_scope() -> Iterator[dict[str, Any]]:
    bag: dict[str, Any] = {}
    token = _request.set(bag)
    try:
        yield bag
    finally:
        _request.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the current request's log lines (no-op outside a request)."""
    bag = _request.get()
    if bag is not None:
        bag.update({k: v for k, v in fields.items() if v is not None})


_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """`process`: this OS process's name (SHOPSITE_PROCESS); `service`: the one service it runs
    alone (SHOPSITE_SERVICE), else "". settings.LOGGING passes both from shopsite/config.py."""

    def __init__(self, process: str = Config.process_name, service: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.process = process
        self.service = service or process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context.get())
        line.update(_request.get() or {})
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class RepeatThrottle(logging.Filter):
    """Let the same message from one logger through at most once per `seconds`.

    A broker outage makes librdkafka report the same connection failure many
    times a second from every client; one line per interval, with the number
    suppressed, says the same thing without drowning the logs.
    """

    def __init__(self, seconds: float = 10.0, clock: Any = time.monotonic):
        super().__init__()
        self.seconds = seconds
        self.clock = clock
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, _fingerprint(record))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.seconds:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.suppressedRepeats = last[1]
        if len(self._last) > 1000:  # bounded: forget everything rather than grow without limit
            self._last.clear()
        self._last[key] = (now, 0)
        return True


def _fingerprint(record: logging.LogRecord) -> str:
    """The message without the parts that change on every repeat (digits: ports, timings, offsets)."""
    text = record.getMessage()
    return "".join("#" if c.isdigit() else c for c in text)[:200]
