"""One relay per outbox across processes, where the database can say so (PostgreSQL).

The relay loops (relay_loop.py) hold the claim for as long as they run
(try_hold); beat's sweep takes it per round (claim) and steps aside while a loop holds it.

With several worker processes (the default on PostgreSQL) each one's
consumers, Celery tasks and sweep relay the same outboxes. Two relays of one
outbox publish the same rows twice: consumers drop the duplicates, but
every duplicate is a wasted delivery (about one in ten under a burst).
A session-level advisory lock per outbox lets one relay publish while the
others step aside; the holder looks again after letting go, so rows
committed by a relay that stepped aside are not left for the sweep.
SQLite serialises writers anyway and MongoDB has no such lock: there the
per-process lock in relay.py is all there is.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connections


@dataclass(frozen=True)
class Claim:
    held: bool  # False: another process is relaying this outbox; leave the rows to it
    exclusive: bool  # True: others step aside while we hold it, so we must look again after letting go


def _key(alias: str) -> int:
    # A stable 32-bit id per outbox; advisory locks are per database anyway, the alias only documents it.
    return zlib.crc32(f"shopsite.outbox:{alias}".encode())


@contextlib.contextmanager
def claim(alias: str) -> Iterator[Claim]:
    connection = connections[alias]
    if connection.vendor != "postgresql":
        yield Claim(held=True, exclusive=False)
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_key(alias)])
        held = bool(cursor.fetchone()[0])
    try:
        yield Claim(held=held, exclusive=True)
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_key(alias)])


def try_hold(alias: str) -> bool:
    """For a long-lived relay loop: take the claim on this thread's connection and keep it.

    Held until release() or until the connection closes (the process died,
    the database restarted): PostgreSQL then lets another process's loop take
    over. True where there is no cross-process lock (SQLite, MongoDB).
    """
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_key(alias)])
        return bool(cursor.fetchone()[0])


def release(alias: str) -> None:
    connection = connections[alias]
    if connection.vendor != "postgresql" or connection.connection is None:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [_key(alias)])
