"""Every message delivered three times: the original and two copies on the same partition."""

from __future__ import annotations

import time

import pytest

from shopsite.events import topics
from shopsite.events.registry import consumer_specs
from tests.system.faults.harness import FaultStack, place_orders, record, settle
from tests.system.faults.kafka_tools import DuplicateStorm

pytestmark = [pytest.mark.backends("sqlite", "postgres"), pytest.mark.faults, pytest.mark.e2e]

ORDERS = 100


def saga_topics() -> list[str]:
    """Every topic some service consumes, the dead-letter topic aside (the saga's own)."""
    consumed = {t for spec in consumer_specs() for t in spec.topics}
    return sorted(consumed - {topics.DEAD_LETTER})


def test_every_message_three_times_applies_once(faults: FaultStack) -> None:
    before_ids = faults.ledger.order_ids()
    storm = DuplicateStorm(faults.bootstrap, saga_topics())
    storm.start()
    try:
        since = time.monotonic()
        placed = place_orders(faults, ORDERS, clients=4)
        ids = set(placed.accepted) | (faults.ledger.order_ids() - before_ids)
        outcome = settle(faults, ids, since=since, timeout=300, want=frozenset({"SHIPPED"}))
    finally:
        storm.stop()
    record(outcome.figure("duplicate storm (every message x3)",
                          f"{storm.seen} messages, {storm.produced} copies"))
    # Without copies this case would prove nothing: each order's saga is at least four events.
    assert storm.seen >= 4 * ORDERS and storm.produced == 2 * storm.seen, (storm.seen, storm.produced, storm.errors)
    assert not outcome.problems(), "\n".join(outcome.problems())
    assert not faults.dead(), [faults.describe(n) for n in faults.dead()]
