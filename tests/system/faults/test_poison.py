"""Poison on every partition of every topic, the dead-letter topic included.

Kinds: binary, JSON nested 100,000 deep, a 5,000-digit number, 2 MB of
valid JSON, a valid event on the wrong topic, an unknown event type. Each
is dead-lettered (a dead-letter row names its topic:partition:offset) or
refused by the broker; every consuming group moves past it; orders placed
afterwards ship; no process died or was replaced.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from shopsite.events import topics
from shopsite.events.envelope import new_event
from shopsite.events.registry import consumer_specs
from tests.system.faults.harness import FaultStack, place_orders, record, settle
from tests.system.faults.kafka_tools import committed, partitions, produce_raw

pytestmark = [pytest.mark.backends("sqlite", "postgres"), pytest.mark.faults, pytest.mark.e2e]

AFTER_ORDERS = 20


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultStack]:
    """A stack of its own: poison stays in the topics for good, and must not meet the other cases.

    Its dead-letter budget is raised above the poison it is fed (336 messages, the read model
    sees them all): the budget is a brake on bad deploys, tested on its own in
    tests/service/test_consumer_runtime.py, and would otherwise stretch this case over minutes.
    """
    running = FaultStack("faults-poison", env={"DEAD_LETTER_LIMIT_PER_MINUTE": "1000"})
    try:
        running.start()
        yield running
    finally:
        running.stop()


def _valid(event_type: str) -> dict:
    order_id = f"poison-{uuid.uuid4()}"
    payloads = {
        topics.ORDER_CREATED: {"items": [{"sku": "SKU-1", "qty": 1}], "total": 10},
        topics.PAYMENT_AUTHORIZED: {"amount": 10, "authId": "auth_poison"},
    }
    event = new_event(event_type, {"orderId": order_id, **payloads[event_type]}, correlation_id=str(uuid.uuid4()))
    return event.to_wire()


def poison_bodies(topic: str) -> dict[str, bytes]:
    wrong = _valid(topics.PAYMENT_AUTHORIZED if topic == topics.ORDER_CREATED else topics.ORDER_CREATED)
    unknown = {**_valid(topics.ORDER_CREATED), "type": "order.NoSuchThing.v1"}
    return {
        "binary": bytes(range(256)) * 8,
        "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
        "5,000-digit number": json.dumps({**_valid(topics.ORDER_CREATED), "eventId": 0}).encode().replace(
            b'"eventId": 0', b'"eventId": ' + b"9" * 5000),
        "2 MB": json.dumps({**_valid(topics.ORDER_CREATED), "padding": "x" * (2 * 1024 * 1024)}).encode(),
        "wrong topic": json.dumps(wrong).encode(),
        "unknown type": json.dumps(unknown).encode(),
    }


def _consumers_of() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for spec in (lane for service in consumer_specs() for lane in service.lanes()):
        for topic in spec.topics:
            groups.setdefault(topic, []).append(spec.group_id)
    return groups


@pytest.mark.timeout(900)
def test_poison_on_every_partition_is_dead_lettered_and_nothing_stops(faults: FaultStack) -> None:
    pids_before = faults.pids()
    records, kinds = [], {}
    for topic in topics.ALL_EVENT_TYPES:
        for partition in partitions(faults.bootstrap, topic):
            for kind, body in poison_bodies(topic).items():
                records.append((topic, partition, f"poison-{kind}".encode(), body))
    since = time.monotonic()
    deliveries = produce_raw(faults.bootstrap, records)
    landed = [d for d in deliveries if d.offset is not None]
    refused = [d for d in deliveries if d.offset is None]
    assert landed, f"the broker refused every poison message: {refused[:3]}"

    groups = _consumers_of()
    unread = sorted({d.topic for d in landed} - set(groups))

    def moved_past() -> list[str]:
        """What some consuming group has not committed past yet."""
        behind = []
        for group in sorted({g for gs in groups.values() for g in gs}):
            mine = [d for d in landed if group in groups.get(d.topic, [])]
            offsets = committed(faults.bootstrap, group, sorted({(d.topic, d.partition) for d in mine}))
            behind += [f"{group} {d.topic}[{d.partition}]@{d.offset}" for d in mine
                       if offsets.get((d.topic, d.partition), -1) <= d.offset]
        return behind

    def not_dead_lettered() -> list[str]:
        letters = faults.ledger.dead_letter_ids()
        return [f"{d.topic}:{d.partition}:{d.offset}" for d in landed
                if d.topic in groups and d.topic != topics.DEAD_LETTER
                and f"{d.topic}:{d.partition}:{d.offset}" not in letters]

    def waiting(what: str, probe, timeout: float) -> list[str]:
        """Poll `probe` (what is still missing) until empty, the timeout, or a process died."""
        deadline = time.monotonic() + timeout
        missing = probe()
        while missing and time.monotonic() < deadline and not faults.dead():
            time.sleep(2)
            missing = probe()
        return [f"{what}: {len(missing)}, e.g. {missing[:5]}"] if missing else []

    problems = waiting("groups not committed past poison", moved_past, 180)
    problems += waiting("poison messages not dead-lettered", not_dead_lettered, 120)
    # The partitions keep flowing: orders placed now still ship.
    before_ids = faults.ledger.order_ids()
    placed = place_orders(faults, AFTER_ORDERS, clients=4, give_up_after=60)
    ids = set(placed.accepted) | (faults.ledger.order_ids() - before_ids)
    outcome = settle(faults, ids, since=since, timeout=30 if faults.dead() else 180, want=frozenset({"SHIPPED"}))
    problems += outcome.problems()
    if placed.given_up:
        problems.append(f"{placed.given_up} orders placed after the poison were never accepted: {dict(placed.refused)}")
    changed = {n: (pid, faults.pid(n)) for n, pid in pids_before.items()
               if faults.pid(n) != pid or not faults.alive(n)}
    if changed:
        problems.append("processes died or were replaced (old, new pid): "
                        f"{changed}\n" + "\n".join(faults.describe(n) for n in changed if not faults.alive(n)))
    record(outcome.figure(f"poison x{len(records)} on every partition incl. DLQ",
                          f"{len(landed)} landed, {len(refused)} refused by the broker"
                          + (f"; unread topics {unread}" if unread else "")
                          + ("; " + "; ".join(p.split(':')[0] for p in problems) if problems else "")))
    assert not problems, "\n".join(problems)
