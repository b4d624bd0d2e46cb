"""The whole system on real processes, once per test session.

`stack` starts the embedded broker, an embedded redis-server, migrations,
topics, the web processes, the celery workers and beat (shopsite.supervisor), and always
stops them by PID. `system` is what the tests talk to: HTTP (httpx), Kafka
(confluent_kafka, directly), /metrics, and the service SQLite files opened
read-only. Nothing here uses Django's database layer, so pytest-django's
`db` fixture is never needed.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from shopsite.supervisor import Stack, StackConfig
from tests.system import waiting

# One line per poll would bury the interesting output of a failing test.
logging.getLogger("httpx").setLevel(logging.WARNING)

ROOT = Path(__file__).resolve().parents[3]
SERVICE_ALIASES = ("order_service", "inventory_service", "payment_service", "shipping_service",
                   "read_model_service")

# Generous: the first consumer group join on a fresh broker takes a few seconds.
SAGA_TIMEOUT = 90.0
STREAMS_PER_USER = 6
STREAMS_IN_ALL = 14
STREAM_MAX_AGE = 10
DEFAULT_TIMEOUT = 30.0

T = TypeVar("T")

_artifacts: Path | None = None


# --------------------------------------------------------------------------
# polling
# --------------------------------------------------------------------------


def wait_for(probe: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.2,
             what: str = "condition") -> T:
    """tests.system.waiting.wait_for with this suite's defaults."""
    return waiting.wait_for(probe, timeout, what, interval)


# --------------------------------------------------------------------------
# Kafka messages as plain data
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def key_text(self) -> str | None:
        return self.key.decode("utf-8", "replace") if self.key is not None else None


# --------------------------------------------------------------------------
# the system under test, as seen from outside
# --------------------------------------------------------------------------


class System:
    def __init__(self, stack: Stack, ops_token: str):
        self.stack = stack
        self.url = stack.url
        self.bootstrap = stack.kafka_bootstrap
        self.var_dir = stack.config.var_dir
        self.ops_headers = {"Authorization": f"Bearer {ops_token}"}
        # Every page and API needs a credential: the tests speak as an operator unless they
        # use `anonymous` (or pass their own Authorization header to it) on purpose.
        self.http = httpx.Client(base_url=stack.url, timeout=15.0, headers=self.ops_headers)
        self.anonymous = httpx.Client(base_url=stack.url, timeout=15.0)

    def close(self) -> None:
        self.http.close()
        self.anonymous.close()

    # ---- HTTP ------------------------------------------------------------

    def post_order(self, body: Any, *, raw: bytes | None = None, headers: dict[str, str] | None = None
                   ) -> httpx.Response:
        content = raw if raw is not None else json.dumps(body).encode()
        return self.http.post("/api/orders", content=content,
                              headers={"Content-Type": "application/json", **(headers or {})})

    def place_order(self, items: list[dict[str, Any]], total: float, **headers: str) -> dict[str, Any]:
        response = self.post_order({"items": items, "total": total}, headers=headers)
        assert response.status_code == 201, f"POST /api/orders -> {response.status_code} {response.text}"
        return response.json()

    def order(self, order_id: str, **params: str) -> httpx.Response:
        return self.http.get(f"/api/orders/{order_id}", params=params)

    def projection(self, order_id: str) -> httpx.Response:
        return self.http.get(f"/api/read/orders/{order_id}")

    def ops_get(self, path: str) -> httpx.Response:
        return self.http.get(path, headers=self.ops_headers)

    def stock(self) -> dict[str, dict[str, Any]]:
        response = self.ops_get("/api/ops/inventory")
        assert response.status_code == 200, response.text
        return {row["sku"]: row for row in response.json()["results"]}

    def payment(self, order_id: str) -> dict[str, Any]:
        response = self.ops_get(f"/api/ops/payments/{order_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def shipment(self, order_id: str) -> dict[str, Any]:
        response = self.ops_get(f"/api/ops/shipments/{order_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_shipped(self, order_id: str, timeout: float = SAGA_TIMEOUT) -> tuple[dict[str, Any], dict[str, Any]]:
        """Wait until both the read model and the order service have the whole happy path (4 events)."""

        def projected() -> dict[str, Any] | None:
            response = self.projection(order_id)
            if response.status_code != 200:
                return None
            doc = response.json()
            return doc if doc["currentStatus"] == "SHIPPED" and len(doc["timeline"]) >= 4 else None

        def ordered() -> dict[str, Any] | None:
            doc = self.order(order_id).json()
            return doc if doc["status"] == "SHIPPED" and len(doc["history"]) >= 4 else None

        projection = wait_for(projected, timeout, what=f"read model of {order_id} to reach SHIPPED "
                                                       f"(last: {self.projection(order_id).text[:400]})")
        order = wait_for(ordered, timeout, what=f"order {order_id} to reach SHIPPED")
        return projection, order

    # ---- metrics ---------------------------------------------------------

    def metrics_text(self) -> str:
        response = self.http.get("/metrics")
        assert response.status_code == 200, response.text
        return response.text

    def samples(self, sample_name: str) -> list[tuple[dict[str, str], float]]:
        found = []
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == sample_name:
                    found.append((dict(sample.labels), float(sample.value)))
        return found

    def consumed(self, outcome: str) -> dict[tuple[str, str], float]:
        """shopsite_events_consumed_total{outcome=...} per (service, topic), summed over processes."""
        totals: dict[tuple[str, str], float] = defaultdict(float)
        for labels, value in self.samples("shopsite_events_consumed_total"):
            if labels.get("outcome") == outcome:
                totals[(labels["service"], labels["topic"])] += value
        return dict(totals)

    # ---- the service databases, read-only --------------------------------

    def sqlite_path(self, alias: str) -> Path:
        return self.var_dir / f"{alias}.sqlite3"

    def query(self, alias: str, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.sqlite_path(alias)}?mode=ro", uri=True, timeout=15)
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()

    def count(self, alias: str, table: str) -> int:
        return int(self.query(alias, f"SELECT COUNT(*) FROM {table}")[0][0])  # noqa: S608 - fixed names

    def outbox_counts(self) -> dict[str, tuple[int, int]]:
        """alias -> (rows, undispatched rows)."""
        result = {}
        for alias in SERVICE_ALIASES:
            rows, pending = self.query(alias, "SELECT COUNT(*), COALESCE(SUM(dispatched = 0), 0) FROM outbox")[0]
            result[alias] = (int(rows), int(pending))
        return result

    def settled_outbox(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, tuple[int, int]]:
        """Outbox counts once nothing is pending and two reads in a row agree (the system is idle)."""
        previous: list[dict[str, tuple[int, int]] | None] = [None]

        def probe() -> dict[str, tuple[int, int]] | None:
            current = self.outbox_counts()
            stable = current == previous[0] and all(pending == 0 for _, pending in current.values())
            previous[0] = current
            return current if stable else None

        return wait_for(probe, timeout, interval=0.5, what="outbox to settle (nothing pending, no new rows)")

    # ---- Kafka -----------------------------------------------------------

    def producer(self) -> Producer:
        return Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 1})

    def produce(self, records: Iterable[tuple[str, bytes | None, bytes | None, int | None]],
                timeout: float = DEFAULT_TIMEOUT) -> list[Record]:
        """Produce (topic, key, value, partition-or-None) and return where each landed."""
        producer = self.producer()
        delivered: list[Record] = []
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                delivered.append(Record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()))

        sent = 0
        for topic, key, value, partition in records:
            kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
            if partition is not None:
                kwargs["partition"] = partition
            producer.produce(topic, **kwargs)
            sent += 1
        remaining = producer.flush(timeout)
        assert remaining == 0 and not errors, f"produce failed: {remaining} undelivered, errors {errors}"
        assert len(delivered) == sent
        return delivered

    def partitions(self, topic: str) -> int:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        metadata = admin.list_topics(topic=topic, timeout=15)
        return len(metadata.topics[topic].partitions)

    def collect(self, topics: list[str], keep: Callable[[Record], bool], done: Callable[[list[Record]], bool],
                timeout: float = 60.0) -> list[Record]:
        """Read `topics` from the beginning with a fresh consumer group until `done(kept)`."""
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": f"e2e-reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        })
        kept: list[Record] = []
        consumer.subscribe(topics)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=500, timeout=0.5):
                    if msg.error() is not None:
                        continue
                    record = Record(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                                    tuple(msg.headers() or ()))
                    if keep(record):
                        kept.append(record)
                if done(kept):
                    return kept
        finally:
            consumer.close()
        raise AssertionError(f"timed out after {timeout:.0f}s reading {topics}; kept {len(kept)}: "
                             f"{[(r.topic, r.partition, r.offset) for r in kept][:20]}")


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Stack:
    global _artifacts
    artifacts = ROOT / "test-artifacts" / f"e2e-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    _artifacts = artifacts
    (artifacts / "tmp").mkdir(parents=True, exist_ok=True)
    running = Stack(StackConfig(
        base_dir=ROOT,
        var_dir=artifacts / "var",
        port=0,
        kafka_bootstrap=None,
        force_embedded_redis=True,
        log_dir=artifacts / "logs",
        # Two web processes on one socket whatever the core count: the live streams must work
        # from whichever process holds them (Channels' Redis layer crosses processes).
        web_processes=2,
        # Short heartbeats so the stream tests see one without waiting 15 s; small stream caps
        # and age so the limits can be reached; the web server's temporary files where a
        # test can watch them.
        extra_env={"SSE_HEARTBEAT_SECONDS": "1", "SSE_MAX_STREAMS_PER_USER": str(STREAMS_PER_USER),
                   "SSE_MAX_STREAMS": str(STREAMS_IN_ALL),
                   "SSE_MAX_AGE_SECONDS": str(STREAM_MAX_AGE), "TMPDIR": str(artifacts / "tmp")},
    ))
    # Registered before start(): whatever happens from here on, every child is stopped by PID.
    request.addfinalizer(running.stop)
    running.start(timeout=120)
    return running


def manage(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    """Run a manage.py command against the running system."""
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=stack.env(),
                          capture_output=True, text=True, timeout=60)


def printed_token(stack: Stack, *args: str) -> str:
    """Run a token-issuing manage.py command; the token is the last line that is not a JSON log line."""
    proc = manage(stack, *args)
    assert proc.returncode == 0, f"{args[0]} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}"
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip() and not line.startswith("{")]
    assert lines, f"{args[0]} printed no token: {proc.stdout!r}"
    return lines[-1]


@pytest.fixture(scope="session")
def ops_token(stack: Stack) -> str:
    return printed_token(stack, "issue_ops_token", "e2e-operator")


VIEWER_PASSWORD = "e2e viewer passphrase 7"


@pytest.fixture(scope="session")
def viewer_token(stack: Stack) -> str:
    """A valid token of an active user who may read but not act (or place orders)."""
    proc = manage(stack, "create_operator", "e2e-viewer", "--read-only", "--password", VIEWER_PASSWORD)
    assert proc.returncode == 0, proc.stderr
    return printed_token(stack, "api_tokens", "create", "e2e-viewer")


@pytest.fixture(scope="session")
def system(stack: Stack, ops_token: str) -> System:
    client = System(stack, ops_token)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _processes_stay_up(request: pytest.FixtureRequest):
    """After each e2e test: no process of the stack died under it (restarted or not)."""
    if "stack" not in request.fixturenames:
        yield
        return
    running: Stack = request.getfixturevalue("stack")
    before = len(running.deaths())
    yield
    died = running.deaths()[before:]
    assert not died, "\n\n".join(death.description for death in died)
    dead = running.dead_children()
    assert not dead, "\n\n".join(running.describe_death(name) for name in dead)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ARG001
    outcome = yield
    report = outcome.get_result()
    if report.failed and _artifacts is not None:
        report.sections.append(("e2e artifacts", f"process logs: {_artifacts / 'logs'}\n"
                                                 f"service databases: {_artifacts / 'var'}"))
