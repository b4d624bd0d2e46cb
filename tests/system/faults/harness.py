"""The fault suite's one door to a running stack, and its invariant checker.

Everything a fault case does to the system goes through `FaultStack`:
starting and stopping it, signalling a process (`kill`), bringing one back
(`restart`), reading PIDs through the supervisor's public `Stack`
interface; only this module depends on it.

`Ledger` reads every service's database directly and read-only (the
stack's processes own them) and turns what it finds into a `Figure`:
accepted orders, lost ones (accepted, never terminal), effects applied
twice, stock error. Nothing here goes through Django's ORM: the test
process never shares a connection with the system under test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from shopsite import databases
from orders import lifecycle
from shopsite.events import topics
from shopsite.supervisor import Stack, StackConfig
from tests.system.ops.support import operator_token
from tests.system.waiting import alive as _alive, wait_for

# One line per request would bury a failing case's output.
logging.getLogger("httpx").setLevel(logging.WARNING)

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
FIGURES = ARTIFACTS / "faults.md"

# Seed stock per SKU (inventory migration: SKU-1 ... SKU-10, 1000 units each) is read at start, not assumed.
SKUS = [f"SKU-{n}" for n in range(1, 11)]
TERMINAL = lifecycle.TERMINAL_STATUSES
# Process kinds a fault case can name; the stack's children are matched by prefix so a
# renamed or multiplied web tier ("web-0", "web-1") is still found.
KIND_PREFIXES = {"worker": ("worker-",), "web": ("daphne", "web"), "beat": ("beat",), "broker": ("kafka",),
                 "redis": ("redis",)}






# --------------------------------------------------------------------------
# the stack
# --------------------------------------------------------------------------


class FaultStack:
    """A whole system on real processes, plus the levers the fault cases pull."""

    def __init__(self, name: str = "faults", workers: list[str] | None = None, env: dict[str, str] | None = None):
        self.artifacts = ARTIFACTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        config = StackConfig(base_dir=ROOT, var_dir=self.artifacts / "var", log_dir=self.artifacts / "logs",
                             port=0, force_embedded_redis=True,
                             extra_env={"LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"), **(env or {})})
        if workers is not None:
            config.worker_services = list(workers)
        self.stack = Stack(config)
        self.initial_stock: dict[str, int] = {}

    # ---- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        self.stack.start(timeout=180)
        self.ledger = Ledger(self)
        self.initial_stock = {sku: available + reserved
                              for sku, (available, reserved) in self.ledger.stock().items()}

    def stop(self) -> None:
        self.stack.stop()

    # ---- what the cases see ------------------------------------------------

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of an operator's API token for this stack (issued once)."""
        return {"Authorization": f"Bearer {operator_token(self.stack)}"}

    @property
    def bootstrap(self) -> str:
        return self.stack.kafka_bootstrap

    @property
    def var_dir(self) -> Path:
        return self.stack.config.var_dir

    @property
    def backend(self) -> str:
        return self.stack.backend

    def env(self) -> dict[str, str]:
        return self.stack.env()

    def names(self, kind: str | None = None) -> list[str]:
        names = list(self.stack.names())
        if kind is None:
            return names
        return [n for n in names if n.startswith(KIND_PREFIXES[kind])]

    def name_of(self, kind: str) -> str:
        found = self.names(kind)
        assert found, f"the stack has no {kind} process; it has {self.names()}"
        return found[0]

    def pid(self, name: str) -> int:
        return self.stack.pid(name)

    def pids(self) -> dict[str, int]:
        return {name: self.pid(name) for name in self.names()}

    def alive(self, name: str) -> bool:
        return _alive(self.pid(name))

    def dead(self) -> list[str]:
        return [name for name in self.names() if not self.alive(name)]

    # ---- levers ------------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal one process by PID (as the kernel's OOM killer or an operator would); returns the PID."""
        pid = self.pid(name)
        os.kill(pid, sig)
        wait_for(lambda: not _alive(pid), 10, f"{name} (pid {pid}) to die of signal {sig}", interval=0.05)
        return pid

    def wait_replaced(self, name: str, old_pid: int, timeout: float) -> bool:
        """Whether the stack itself brought `name` back under a new PID within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(KeyError, AssertionError):
                pid = self.pid(name)
                if pid != old_pid and _alive(pid):
                    return True
            time.sleep(0.25)
        return False

    def restart(self, name: str, timeout: float = 90) -> None:
        """Start `name` again (same command, same port) unless something already did."""
        with contextlib.suppress(KeyError):
            if self.alive(name):
                return
        try:
            self.stack.start_child(name, timeout=timeout)
        except RuntimeError:
            # The stack's readiness wait gives up when *another* child died meanwhile (e.g. a worker
            # that stopped over the fault). That death is the case's finding, reported by the case;
            # here only `name` itself matters.
            if not self.alive(name):
                raise

    def repair(self) -> list[str]:
        """Start whatever is dead, so one failed case does not take the next ones down with it."""
        dead = self.dead()
        for tier in ("kafka", "redis"):
            if tier in dead:
                self.restart(tier)
        for name in dead:
            if name not in ("kafka", "redis"):
                self.restart(name)
        return dead

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def describe(self, name: str) -> str:
        return self.stack.describe_death(name)


# --------------------------------------------------------------------------
# orders from outside
# --------------------------------------------------------------------------


@dataclass
class Placed:
    accepted: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # why attempts failed (retried with the same key)
    given_up: int = 0


def order_body(n: int) -> dict[str, Any]:
    """One unit of one SKU, round robin: a 2,000-order burst takes 200 units of each seeded SKU."""
    return {"items": [{"sku": SKUS[n % len(SKUS)], "qty": 1}], "total": 10 + n % 7}


def place_orders(faults: FaultStack, count: int, *, clients: int = 8, give_up_after: float = 180.0,
                 on_progress: Callable[[int], None] | None = None, first: int = 0) -> Placed:
    """POST `count` orders from `clients` threads, as a signed-in storefront would (an operator's
    token); each retried with its Idempotency-Key until accepted.

    A retry with the same key is how a real client survives a dropped
    connection without ordering twice; it also makes "accepted" exact.
    """
    placed = Placed()
    lock = threading.Lock()
    counter = iter(range(first, first + count))

    def client() -> None:
        with httpx.Client(base_url=faults.url, timeout=15.0, headers=faults.auth) as http:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                key = f"fault-{uuid.uuid4()}"
                deadline = time.monotonic() + give_up_after
                while True:
                    try:
                        response = http.post("/api/orders", json=order_body(n), headers={"Idempotency-Key": key})
                        if response.status_code in (200, 201):
                            with lock:
                                placed.accepted.append(response.json()["orderId"])
                                done = len(placed.accepted)
                            if on_progress is not None:
                                on_progress(done)
                            break
                        why = f"HTTP {response.status_code}"
                    except httpx.HTTPError as exc:
                        why = type(exc).__name__
                    with lock:
                        placed.refused[why] += 1
                    if time.monotonic() > deadline:
                        with lock:
                            placed.given_up += 1
                        break
                    time.sleep(0.2)

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return placed


# --------------------------------------------------------------------------
# the databases, read-only
# --------------------------------------------------------------------------


# Reads that fail while the fault lasts (a locked file, a database refusing connections) are retried.
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.OperationalError, psycopg.OperationalError)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


class Ledger:
    """Reads the five service databases of one stack (SQLite files or its PostgreSQL databases)."""

    def __init__(self, faults: FaultStack):
        self.backend = faults.backend
        self.var_dir = faults.var_dir
        if self.backend == databases.POSTGRES:
            url = faults.env()["DATABASE_URL"]
            self.pg_url = url
            self.pg_names = databases.postgres_names(databases.postgres_base_name(url))
        elif self.backend != databases.SQLITE:
            raise RuntimeError(f"the fault suite reads SQLite or PostgreSQL databases, not {self.backend}")

    @contextlib.contextmanager
    def connect(self, alias: str) -> Iterator[Any]:
        if self.backend == databases.SQLITE:
            path = self.var_dir / f"{alias}.sqlite3"
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        else:
            parts = urlsplit(self.pg_url)
            conn = psycopg.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                                   user=parts.username or "postgres", password=parts.password or "",
                                   dbname=self.pg_names[alias], autocommit=True, connect_timeout=10)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, alias: str, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        if self.backend != databases.SQLITE:
            sql = sql.replace("?", "%s")
        with self.connect(alias) as conn:
            return list(conn.execute(sql, tuple(params)).fetchall())

    # ---- facts ---------------------------------------------------------------

    def order_ids(self) -> set[str]:
        return {row[0] for row in self.query("order_service", "SELECT _id FROM orders")}

    def statuses(self, order_ids: Iterable[str] | None = None) -> dict[str, str]:
        rows = dict(self.query("order_service", "SELECT _id, status FROM orders"))
        return rows if order_ids is None else {o: rows.get(o, "MISSING") for o in order_ids}

    def stock(self) -> dict[str, tuple[int, int]]:
        return {sku: (int(a), int(r)) for sku, a, r in
                self.query("inventory_service", "SELECT _id, available, reserved FROM stock")}

    def held_units(self) -> dict[str, int]:
        """Units that reservations still hold: RESERVED, and SHIPPED (shipped units stay counted in
        Stock.reserved; inventory's on_order_shipped only marks the reservation)."""
        held: Counter[str] = Counter()
        for status, items in self.query("inventory_service", "SELECT status, items FROM reservations"):
            if status in ("RESERVED", "SHIPPED"):
                for line in _json(items):
                    held[line["sku"]] += int(line["qty"])
        return dict(held)

    def stock_error(self, initial: dict[str, int]) -> tuple[int, list[str]]:
        """Units unaccounted for: |available + reserved - initial| + |reserved - held by reservations|, per SKU."""
        error, details = 0, []
        held = self.held_units()
        for sku, (available, reserved) in sorted(self.stock().items()):
            if available < 0 or reserved < 0:
                details.append(f"{sku}: negative (available {available}, reserved {reserved})")
            drift = abs(available + reserved - initial.get(sku, available + reserved))
            hold = abs(reserved - held.get(sku, 0))
            if drift or hold:
                details.append(f"{sku}: available {available} + reserved {reserved} vs initial {initial.get(sku)}; "
                               f"reservations hold {held.get(sku, 0)}")
            error += drift + hold + max(0, -available) + max(0, -reserved)
        return error, details

    def applied_twice(self, order_ids: set[str]) -> dict[str, list[str]]:
        """order -> what happened to it more than once."""
        found: dict[str, list[str]] = defaultdict(list)
        once_per_order = [
            ("inventory_service", topics.INVENTORY_RESERVED, "reservations"),
            ("payment_service", topics.PAYMENT_AUTHORIZED, "authorisations"),
            ("payment_service", topics.PAYMENT_REFUNDED, "refunds"),
            ("shipping_service", topics.ORDER_SHIPPED, "shipments"),
        ]
        for alias, event_type, what in once_per_order:
            # Distinct eventIds: a dead-letter replay republishes the same event, which is not a second effect.
            rows = self.query(alias, 'SELECT "key", COUNT(DISTINCT "eventId") FROM outbox WHERE type = ? '
                                     'GROUP BY "key" HAVING COUNT(DISTINCT "eventId") > 1', [event_type])
            for key, n in rows:
                if key in order_ids:
                    found[key].append(f"{n} {what}")
        for alias, table, column, what in (("order_service", "orders", "history", "history"),
                                           ("read_model_service", "orders_projection", "timeline", "timeline")):
            for order_id, entries in self.query(alias, f'SELECT _id, {column} FROM {table}'):  # noqa: S608
                if order_id not in order_ids:
                    continue
                repeated = [e for e, n in Counter(x["eventId"] for x in _json(entries)).items() if n > 1]
                if repeated:
                    found[order_id].append(f"{len(repeated)} {what} entries twice")
        return dict(found)

    def dead_letter_ids(self) -> set[str]:
        return {row[0] for row in self.query("read_model_service", "SELECT _id FROM dead_letters")}


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------


@dataclass
class Figure:
    fault: str
    orders: int
    lost: int
    duplicated: int
    stock_error: int
    recover_seconds: float | None
    notes: str = ""

    def line(self) -> str:
        recover = f"{self.recover_seconds:.1f}" if self.recover_seconds is not None else "never"
        return (f"FAULT {self.fault}: orders={self.orders} lost={self.lost} duplicated={self.duplicated} "
                f"stock_error={self.stock_error} recover_s={recover}" + (f" ({self.notes})" if self.notes else ""))

    def row(self) -> str:
        recover = f"{self.recover_seconds:.1f}" if self.recover_seconds is not None else "never"
        return (f"| {self.fault} | {self.orders} | {self.lost} | {self.duplicated} | {self.stock_error} | "
                f"{recover} | {self.notes} |")


_figures_started = False


def record(figure: Figure) -> None:
    """Print the figure line and append it to test-artifacts/faults.md (a fresh table per pytest run)."""
    global _figures_started
    print(figure.line(), flush=True)
    ARTIFACTS.mkdir(exist_ok=True)
    mode = "a" if _figures_started else "w"
    with FIGURES.open(mode) as f:
        if not _figures_started:
            f.write(f"# Fault suite, {time.strftime('%Y-%m-%d %H:%M:%S')} (SHOPSITE_DB="
                    f"{os.environ.get('SHOPSITE_DB', 'sqlite')})\n\n"
                    "| fault | orders | lost | duplicated | stock error | seconds to recover | notes |\n"
                    "| --- | --- | --- | --- | --- | --- | --- |\n")
        f.write(figure.row() + "\n")
    _figures_started = True


@dataclass
class Outcome:
    """What the ledger says about one case's orders once they settled (or the wait ran out)."""

    orders: int
    lost: dict[str, str]
    twice: dict[str, list[str]]
    stock_error: int
    stock_details: list[str]
    recover_seconds: float | None

    def figure(self, fault: str, notes: str = "") -> Figure:
        return Figure(fault, self.orders, len(self.lost), len(self.twice), self.stock_error,
                      self.recover_seconds, notes)

    def problems(self) -> list[str]:
        out = []
        if self.lost:
            by_status = Counter(self.lost.values())
            out.append(f"{len(self.lost)} of {self.orders} orders never reached a terminal status: {dict(by_status)}; "
                       f"e.g. {sorted(self.lost)[:3]}")
        if self.twice:
            sample = dict(list(sorted(self.twice.items()))[:3])
            out.append(f"{len(self.twice)} orders had an effect applied twice, e.g. {sample}")
        if self.stock_error:
            out.append(f"stock not conserved (error {self.stock_error} units): {self.stock_details[:5]}")
        return out


def settle(faults: FaultStack, order_ids: set[str], since: float, timeout: float,
           want: frozenset[str] = TERMINAL) -> Outcome:
    """Wait until every order is in `want` (or `timeout`), then read the invariants.

    `since` is the monotonic time of the fault: seconds to recover run from it
    to the moment the last order reached a wanted status.
    """
    ledger = faults.ledger
    deadline = time.monotonic() + timeout
    recovered: float | None = None
    statuses: dict[str, str] = {}
    while True:
        with contextlib.suppress(*DB_ERRORS):
            statuses = ledger.statuses(order_ids)
            if all(s in want for s in statuses.values()):
                recovered = time.monotonic() - since
                break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    lost = {o: s for o, s in statuses.items() if s not in want}
    if recovered is not None:
        # The read model and the last compensations trail the order service by a hop: let them land.
        _wait_quiet(faults)
    twice = ledger.applied_twice(order_ids)
    error, details = ledger.stock_error(faults.initial_stock)
    return Outcome(len(order_ids), lost, twice, error, details, recovered)


def _wait_quiet(faults: FaultStack, timeout: float = 60) -> None:
    """Until no outbox row is pending and two reads a second apart agree."""
    aliases = ("order_service", "inventory_service", "payment_service", "shipping_service", "read_model_service")
    previous: list[Any] = [None]

    def quiet() -> bool:
        now = [faults.ledger.query(a, "SELECT COUNT(*), COALESCE(SUM(CASE WHEN dispatched THEN 0 ELSE 1 END), 0) "
                                      "FROM outbox")[0] for a in aliases]
        stable = now == previous[0] and all(int(pending) == 0 for _, pending in now)
        previous[0] = now
        return stable

    with contextlib.suppress(AssertionError):
        wait_for(quiet, timeout, "outboxes to drain", interval=1.0)
