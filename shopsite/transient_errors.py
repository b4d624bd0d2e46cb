"""Which database errors are transient: the same work succeeds if tried again later.

A transient error says nothing about the event being handled (another
writer held a lock, two transactions deadlocked, the server restarted), so
the consumer waits and retries it and never dead-letters a valid event for
it. Anything else is the event's or the code's problem and follows the
normal retry-then-dead-letter path.

Django wraps driver errors (django.db.OperationalError with the driver's
error as __cause__), so the whole cause/context chain is examined. Only
error classes and codes are compared; messages only where SQLite offers
nothing else.
"""

from __future__ import annotations

import sqlite3

# PostgreSQL SQLSTATEs: serialization_failure, deadlock_detected, lock_not_available,
# admin/crash shutdown, cannot_connect_now, too_many_connections; class 08 is connection loss.
POSTGRES_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"})
POSTGRES_TRANSIENT_CLASSES = ("08",)

# MongoDB: WriteConflict, LockTimeout, and the not-primary / shutting-down family seen during a failover.
MONGO_TRANSIENT_CODES = frozenset({112, 24, 11600, 11602, 10107, 13435, 13436, 189, 91})
MONGO_TRANSIENT_LABELS = ("TransientTransactionError", "RetryableWriteError")

SQLITE_TRANSIENT_MESSAGES = ("database is locked", "database table is locked", "database schema is locked",
                             "database is busy")


def is_transient(exc: BaseException) -> bool:
    return any(_transient_itself(e) for e in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen) and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _transient_itself(exc: BaseException) -> bool:
    return _sqlite(exc) or _postgres(exc) or _mongo(exc) or _django_connection_lost(exc)


def _sqlite(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return True
    message = str(exc).lower()
    return any(m in message for m in SQLITE_TRANSIENT_MESSAGES)


def _postgres(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a pinned dependency
        return False
    if not isinstance(exc, psycopg.Error):
        return False
    state = getattr(exc, "sqlstate", None)
    if state is None:
        # No SQLSTATE: the client lost (or never had) its connection to the server.
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return state in POSTGRES_TRANSIENT_STATES or state.startswith(POSTGRES_TRANSIENT_CLASSES)


def _mongo(exc: BaseException) -> bool:
    try:
        from pymongo import errors
    except ImportError:  # pragma: no cover - pymongo is a pinned dependency
        return False
    if isinstance(exc, (errors.ConnectionFailure, errors.WaitQueueTimeoutError)):
        return True  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError, ...
    if isinstance(exc, errors.PyMongoError) and any(exc.has_error_label(label) for label in MONGO_TRANSIENT_LABELS):
        return True
    return isinstance(exc, errors.OperationFailure) and exc.code in MONGO_TRANSIENT_CODES


def _django_connection_lost(exc: BaseException) -> bool:
    """Django's own 'connection already closed' (raised without a driver error) after a lost connection."""
    from django.db import InterfaceError

    return isinstance(exc, InterfaceError) and "closed" in str(exc).lower()
