"""How many PostgreSQL connections a process holds: bounded, and named after the process.

Django serves each ASGI request's sync code on a thread of its own, which
ends with the request. A connection kept for reuse on such a thread
(CONN_MAX_AGE) is never reused: it stays open until the garbage collector
finds it. Under a burst a web process held dozens and the shared server ran
out of connections. Every process now draws from a pool per database.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.db import connections

from shopsite.ops.tokens import ID_CHARS, PREFIX

pytestmark = [pytest.mark.backends("postgres"), pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Well-formed, unknown: the token middleware looks it up in the default database, in the request's thread.
UNKNOWN_TOKEN = PREFIX + "x" * ID_CHARS + "y" * 40


def _request(path: str) -> int:
    # Imported here, not at collection: importing the ASGI application starts the order writer's thread,
    # whose connection would then hold the in-memory SQLite test database of other backends' runs.
    from shopsite.asgi import application

    async def send() -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "root_path": "", "headers": [(b"host", b"testserver"),
                                              (b"authorization", f"Bearer {UNKNOWN_TOKEN}".encode())],
                 "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await communicator.receive_output(timeout=10)
        await communicator.receive_output(timeout=10)  # the body
        await communicator.wait(timeout=10)
        return start["status"]

    return asyncio.run(send())


def _server_connections(alias: str) -> int:
    """Sessions the server has open on `alias`'s database (this test process is its only client)."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.fixture
def no_garbage_collection() -> Iterator[None]:
    # A leaked connection is closed whenever the collector happens to run; without it the leak shows every time.
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_web_requests_reuse_a_bounded_number_of_connections(no_garbage_collection: None) -> None:
    alias = "default"
    before = _server_connections(alias)
    statuses = {_request("/api/read/orders") for _ in range(3 * settings.DATABASE_POOL_SIZE)}
    assert statuses == {401}  # each request looked the token up in the default database
    opened = _server_connections(alias) - before
    assert opened <= settings.DATABASE_POOL_SIZE  # not one per request


def test_pg_stat_activity_names_the_process() -> None:
    with connections["order_service"].cursor() as cursor:
        cursor.execute("SELECT current_setting('application_name')")
        assert cursor.fetchone()[0] == settings.SHOPSITE_PROCESS
