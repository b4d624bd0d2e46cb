"""PostgreSQL: commits whose loss in a server crash costs a duplicate, never a lost event.

The relay marks rows sent after the broker acknowledged them. Should the
server crash before such a commit reached the disk, the rows are published
again after the restart, and consumers drop the copies (processed_events):
the same as a relay that died between the ack and the mark. So the mark
need not wait for the WAL flush. In a sampled burst these commits were a
quarter of the sessions waiting on the WAL, holding up the commits that do
need the flush (orders, consumer batches).

Only a transaction of its own: inside someone else's transaction a SET LOCAL
would relax their commit too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connections, transaction


@contextlib.contextmanager
def relaxed(alias: str) -> Iterator[None]:
    connection = connections[alias]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield
