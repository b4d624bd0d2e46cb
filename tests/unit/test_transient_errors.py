"""Which database errors mean 'wait and try again' (never dead-letter) and which do not."""

import sqlite3

import django.db
import psycopg
import pytest
from psycopg import errors as pg
from pymongo import errors as mongo

from shopsite.transient_errors import is_transient

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")


def wrapped(driver_error: BaseException, django_class=django.db.OperationalError) -> BaseException:
    """As Django raises it: its own class, the driver's error as the cause."""
    try:
        try:
            raise driver_error
        except BaseException as exc:
            raise django_class(*driver_error.args) from exc
    except BaseException as outer:
        return outer


TRANSIENT = [
    sqlite3.OperationalError("database is locked"),
    sqlite3.OperationalError("database table is locked: inventory_stock"),
    pg.DeadlockDetected("deadlock detected"),
    pg.SerializationFailure("could not serialize access due to concurrent update"),
    pg.LockNotAvailable("canceling statement due to lock timeout"),
    pg.AdminShutdown("terminating connection due to administrator command"),
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
    mongo.OperationFailure("WriteConflict", code=112),
    mongo.OperationFailure("no", code=251, details={"errorLabels": ["TransientTransactionError"]}),
    mongo.AutoReconnect("connection reset"),
    mongo.ServerSelectionTimeoutError("no primary"),
    django.db.InterfaceError("connection already closed"),
]

PERMANENT = [
    sqlite3.OperationalError("no such table: inventory_stock"),
    sqlite3.IntegrityError("UNIQUE constraint failed: processed_events.id"),
    pg.UniqueViolation("duplicate key value violates unique constraint"),
    pg.StringDataRightTruncation("value too long for type character varying(64)"),
    pg.UndefinedTable("relation does not exist"),
    mongo.DuplicateKeyError("E11000 duplicate key", code=11000),
    mongo.OperationFailure("bad value", code=2),
    RuntimeError("database is locked"),  # the words alone, from no database driver
    ValueError("boom"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=repr)
def test_transient_errors_are_recognised_bare_and_as_django_raises_them(error):
    assert is_transient(error)
    assert is_transient(wrapped(error))


@pytest.mark.parametrize("error", PERMANENT, ids=repr)
def test_other_errors_are_not_transient(error):
    assert not is_transient(error)
    assert not is_transient(wrapped(error, django.db.DatabaseError))
