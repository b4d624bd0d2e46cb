"""rebuild_projection on a running read model: thousands of orders in every status, rebuilt identically.

The read model runs alone (its own web, worker and beat on real processes),
so the events produced here are the only thing that moves its projections:
each order's events are made with the services' own constructor (new_event,
through tests.factories.Saga) and produced straight to the topics, to reach
every status quickly and deterministically. The command runs as operators
run it, `manage.py rebuild_projection`, while the system keeps running.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Producer

from orders import lifecycle
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.supervisor import Stack, StackConfig
from tests.factories import Saga
from tests.system.ops.conftest import run_stack
from tests.system.ops.support import ROOT, artifacts, query, wait_for

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.e2e]

PER_STATUS = int(os.environ.get("REBUILD_TEST_ORDERS_PER_STATUS", "1000"))
ALIAS = "read_model_service"


def _to(status: str) -> Callable[[Saga], list[Event]]:
    def reserved(s: Saga) -> list[Event]:
        return [s.created(), s.reserved()]

    def authorized(s: Saga) -> list[Event]:
        return [*reserved(s), s.authorized()]

    def shipping_failed(s: Saga) -> list[Event]:
        return [*authorized(s), s.next(topics.SHIPPING_FAILED, {"reason": "carrier outage"})]

    paths: dict[str, Callable[[Saga], list[Event]]] = {
        lifecycle.CREATED: lambda s: [s.created()],
        lifecycle.INVENTORY_RESERVED: reserved,
        lifecycle.INVENTORY_FAILED: lambda s: [s.created(), s.next(topics.INVENTORY_FAILED,
                                                                    {"reason": "insufficient stock for SKU-1"})],
        lifecycle.PAYMENT_AUTHORIZED: authorized,
        lifecycle.PAYMENT_FAILED: lambda s: [*reserved(s), s.next(topics.PAYMENT_FAILED, {"reason": "declined"})],
        lifecycle.SHIPPED: lambda s: s.happy_path(),
        lifecycle.SHIPPING_FAILED: shipping_failed,
        lifecycle.REFUNDED: lambda s: [*shipping_failed(s),
                                       s.next(topics.PAYMENT_REFUNDED, {"amount": s.total, "refundId": "ref_1"})],
    }
    return paths[status]


@pytest.fixture(scope="module")
def readmodel_alone() -> Iterator[Stack]:
    base = artifacts("rebuild")
    yield from run_stack(StackConfig(base_dir=ROOT, var_dir=base / "var", log_dir=base / "logs", port=0,
                                     force_embedded_redis=True, service="readmodel"))


def produce(bootstrap: str, events: list[Event], raw: list[tuple[str, str, bytes]] = ()) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    for event in events:
        while True:
            try:
                producer.produce(event.topic, key=event.key.encode(), value=event.to_bytes())
                break
            except BufferError:
                producer.poll(0.1)
    for topic, key, value in raw:
        producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(60) == 0


def live_statuses(stack: Stack) -> Counter:
    return Counter(dict(query(stack, ALIAS, 'SELECT "currentStatus", COUNT(*) FROM orders_projection '
                                            'GROUP BY "currentStatus"')))


def live_rows(stack: Stack) -> dict[str, tuple]:
    rows = query(stack, ALIAS, 'SELECT "_id", "currentStatus", timeline, "createdAt", items, total '
                               'FROM orders_projection')
    return {r[0]: (r[1], [(e["eventId"], e["type"], e["at"]) for e in json.loads(r[2])], r[3], r[4], r[5])
            for r in rows}


def manage(stack: Stack, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=stack.env(), capture_output=True,
                          text=True, timeout=900)
    log = stack.config.log_dir / f"manage-{'-'.join(a.strip('-') for a in args)}.txt"
    log.write_text(f"$ manage.py {' '.join(args)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.timeout(900)  # 8,000 orders (24,000 events) projected live, then replayed twice
def test_rebuilt_projections_are_identical_to_the_live_ones(readmodel_alone: Stack) -> None:
    stack = readmodel_alone
    expected: dict[str, str] = {}
    events: list[Event] = []
    for status in lifecycle.STATUSES:
        for _ in range(PER_STATUS):
            saga = Saga()
            events += _to(status)(saga)
            expected[saga.order_id] = status
    # Messages that can never be handled: dead-lettered by the live read model, and the dead
    # letters land on their orders' timelines; the rebuild must reproduce that too.
    # (Produced once their orders are projected: a dead letter joins only a known order's timeline.)
    produce(stack.kafka_bootstrap, events)
    wait_for(lambda: all(live_statuses(stack)[s] == PER_STATUS for s in lifecycle.STATUSES), 600,
             f"the live read model to project {len(expected)} orders", interval=2)
    raw = [(topics.ORDER_SHIPPED, order_id, b'{"not": "an envelope"}') for order_id in list(expected)[:5]]
    produce(stack.kafka_bootstrap, [], raw)
    wait_for(lambda: query(stack, ALIAS, 'SELECT COUNT(*) FROM orders_projection WHERE timeline LIKE ?',
                           (f'%{topics.DEAD_LETTER}%',))[0][0] == len(raw), 120, "the dead letters on the timelines")
    before = live_rows(stack)
    assert {oid: row[0] for oid, row in before.items()} == expected

    # 1. Dry run while the system runs: rebuilt == live, nothing changed.
    out = manage(stack, "rebuild_projection", "--dry-run")
    print(out)
    assert f"events replayed: {len(events) + len(raw) * 2}" in out  # + each poison message's dead letter
    assert f"orders rebuilt: {len(expected)}" in out and f"live orders: {len(expected)}" in out
    for status in lifecycle.STATUSES:
        assert any(line.split() == [status, str(PER_STATUS), str(PER_STATUS)] for line in out.splitlines()), status
    assert "orders that differ: 0   only live: 0   only rebuilt: 0" in out
    assert "result: identical" in out
    assert live_rows(stack) == before

    # 2. Damage the live projections (a lost row, a wrong status, a lost timeline entry); the
    #    rebuild finds exactly those orders and puts them right.
    lost, wrong, short = list(expected)[10], list(expected)[-1], list(expected)[-2]
    with sqlite3.connect(stack.config.var_dir / f"{ALIAS}.sqlite3", timeout=30) as db:
        db.execute('DELETE FROM orders_projection WHERE "_id" = ?', (lost,))
        db.execute('UPDATE orders_projection SET "currentStatus" = ? WHERE "_id" = ?', (lifecycle.CREATED, wrong))
        timeline = json.loads(db.execute('SELECT timeline FROM orders_projection WHERE "_id" = ?',
                                         (short,)).fetchone()[0])
        db.execute('UPDATE orders_projection SET timeline = ? WHERE "_id" = ?', (json.dumps(timeline[:-1]), short))
    out = manage(stack, "rebuild_projection")
    print(out)
    assert "orders that differ: 2   only live: 0   only rebuilt: 1" in out
    assert f"differs: {wrong}" in out and f"differs: {short}" in out and f"only rebuilt: {lost}" in out
    assert "swapped: 2 replaced, 1 inserted, 0 unchanged, 0 left to the live consumer" in out
    assert live_rows(stack) == before  # exactly the projections before the damage
