"""The infrastructure goes away and comes back: the broker (restarted empty), Redis, the database.

Orders placed before, during and after the outage all ship; the figure's
seconds to recover run from the start of the fault to the last of them
SHIPPED. The broker and Redis are restarted by the test when the stack did
not do it within a few seconds (that is the fault: "killed and restarted").
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from shopsite import databases
from tests.system.faults.harness import FaultStack, Placed, place_orders, record, settle, wait_for

pytestmark = [pytest.mark.backends("sqlite", "postgres"), pytest.mark.faults, pytest.mark.e2e]

PER_PHASE = 20
OUTAGE_SECONDS = 10.0
SHIPPED = frozenset({"SHIPPED"})
SERVICE_ALIASES = ("order_service", "inventory_service", "payment_service", "shipping_service",
                   "read_model_service")


def _health(faults: FaultStack) -> int | None:
    try:
        return httpx.get(f"{faults.url}/health", timeout=5).status_code
    except httpx.HTTPError:
        return None


def _place(faults: FaultStack, first: int, give_up_after: float = 120) -> Placed:
    return place_orders(faults, PER_PHASE, clients=4, first=first, give_up_after=give_up_after)


def _check(faults: FaultStack, fault: str, phases: dict[str, Placed], since: float, before_ids: set[str]) -> None:
    ids = {o for p in phases.values() for o in p.accepted} | (faults.ledger.order_ids() - before_ids)
    outcome = settle(faults, ids, since=since, timeout=240, want=SHIPPED)
    dead = faults.dead()
    refused = {name: dict(p.refused) for name, p in phases.items() if p.refused}
    notes = [f"POST attempts refused: {refused}"] if refused else []
    if dead:
        notes.append(f"dead afterwards: {dead}")
    record(outcome.figure(fault, "; ".join(notes)))
    problems = outcome.problems()
    given_up = {name: p.given_up for name, p in phases.items() if p.given_up}
    if given_up:
        problems.append(f"orders never accepted, per phase: {given_up} (refusals {refused})")
    if dead:
        problems.append("processes died: " + "\n".join(faults.describe(n) for n in dead))
    assert not problems, "\n".join(problems)


def _kill_and_restart(faults: FaultStack, name: str, fault: str, rounds: int = 1) -> None:
    before_ids = faults.ledger.order_ids()
    phases = {"before": _place(faults, 0)}
    since = time.monotonic()
    for round_ in range(rounds):
        old_pid = faults.kill(name, signal.SIGKILL)
        try:
            # The supervisor starts it again within a second, so /health may never get to see it
            # gone: look briefly, and place the "during" orders either way.
            with contextlib.suppress(AssertionError):
                wait_for(lambda: _health(faults) != 200, 3, f"/health to notice {name} is gone", interval=0.1)
            phases[f"during-{round_}"] = _place(faults, 100 + 20 * round_)
            # "A few seconds later": a supervisor may already have started it again (same port, empty).
            faults.wait_replaced(name, old_pid, 5)
        finally:
            faults.restart(name)
        wait_for(lambda: _health(faults) == 200, 120, "/health to be 200 again", interval=0.5)
        phases[f"after-{round_}"] = _place(faults, 200 + 20 * round_)
    _check(faults, fault if rounds == 1 else f"{fault} ({rounds} times)", phases, since, before_ids)


def test_broker_killed_and_restarted_empty(faults: FaultStack) -> None:
    # Several rounds: the fenced-producer failure after a restart shows up in some restarts only.
    _kill_and_restart(faults, faults.name_of("broker"), "broker kill -9, restarted empty", rounds=2)


def test_redis_killed_and_restarted(faults: FaultStack) -> None:
    _kill_and_restart(faults, faults.name_of("redis"), "redis kill -9, restarted")


# ---- the database unavailable for 10 s ---------------------------------------


@contextlib.contextmanager
def _sqlite_locked(faults: FaultStack) -> Iterator[None]:
    """Another connection holds every service database's write lock (BEGIN EXCLUSIVE)."""
    held = []
    try:
        for alias in SERVICE_ALIASES:
            conn = sqlite3.connect(faults.var_dir / f"{alias}.sqlite3", timeout=60, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            held.append(conn)
        yield
    finally:
        for conn in held:
            conn.rollback()
            conn.close()


@contextlib.contextmanager
def _postgres_unavailable(faults: FaultStack) -> Iterator[None]:
    """The stack's own databases refuse connections and lose the ones they had (as if the server stopped).

    The server is shared with other users of the machine, so it is not
    stopped: only this stack's databases go away and come back.
    """
    import psycopg

    url = faults.env()["DATABASE_URL"]
    parts = urlsplit(url)
    names = [n for a, n in databases.postgres_names(databases.postgres_base_name(url)).items() if a != "default"]
    admin = psycopg.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                            user=parts.username or "postgres", password=parts.password or "", dbname="postgres",
                            autocommit=True)
    try:
        for name in names:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ANY(%s)", [names])
        yield
    finally:
        for name in names:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()


def _database_outage(faults: FaultStack, outage: contextlib.AbstractContextManager[None], fault: str) -> None:
    before_ids = faults.ledger.order_ids()
    phases = {"before": _place(faults, 300)}
    during: dict[str, Placed] = {}
    since = time.monotonic()
    with outage:
        # Placed while the database is away; each client keeps retrying with its Idempotency-Key.
        clients = threading.Thread(target=lambda: during.update(during=_place(faults, 400, give_up_after=180)))
        clients.start()
        time.sleep(OUTAGE_SECONDS)
    clients.join()
    phases.update(during)
    phases["after"] = _place(faults, 500)
    _check(faults, fault, phases, since, before_ids)


@pytest.mark.backends(databases.SQLITE)
def test_sqlite_locked_by_another_connection_for_10s(faults: FaultStack) -> None:
    _database_outage(faults, _sqlite_locked(faults), "database unavailable 10 s (SQLite BEGIN EXCLUSIVE)")


@pytest.mark.backends(databases.POSTGRES)
def test_postgres_unavailable_for_10s(faults: FaultStack) -> None:
    _database_outage(faults, _postgres_unavailable(faults), "database unavailable 10 s (PostgreSQL connections cut)")
