"""Concurrent orders of a web process share one transaction (orders/writer.py); each keeps its own answer."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from orders import commands
from orders.commands import IdempotencyConflict, Placed, placement
from orders.models import IdempotencyKey, Order
from orders.writer import GroupWriter
from shopsite.events import topics
from shopsite.events.models import OutboxMessage

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")

ALIAS = commands.ALIAS
ITEMS = [{"sku": "SKU-1", "qty": 1}]


def rows() -> tuple[int, int, int]:
    return (Order.objects.using(ALIAS).count(), OutboxMessage.objects.using(ALIAS).count(),
            IdempotencyKey.objects.using(ALIAS).count())


def created(outcome: object) -> Placed:
    assert isinstance(outcome, Placed) and outcome.created, outcome
    return outcome


@pytest.mark.django_db
def test_a_group_answers_every_order_as_if_each_came_alone():
    earlier = commands.place_order(ITEMS, 10, "k-earlier")
    before = rows()
    outcomes = commands.place_orders_together([
        placement(ITEMS, 10),
        placement(ITEMS, 11, "k-new"),
        placement(ITEMS, 11, "k-new"),  # the same key and body again in the same group: a replay
        placement(ITEMS, 12, "k-new"),  # the same key with another body: a conflict
        placement(ITEMS, 10, "k-earlier"),  # a key an earlier transaction claimed: its order
        placement(ITEMS, 99, "k-earlier"),
        placement([{"sku": "SKU-2", "qty": 3}], 30),
    ])
    first, keyed, total = created(outcomes[0]), created(outcomes[1]), created(outcomes[6])
    replay = outcomes[2]
    assert isinstance(replay, Placed) and not replay.created and replay.order.order_id == keyed.order.order_id
    assert isinstance(outcomes[3], IdempotencyConflict) and isinstance(outcomes[5], IdempotencyConflict)
    again = outcomes[4]
    assert isinstance(again, Placed) and not again.created and again.order.order_id == earlier.order.order_id
    # Three new orders, each with its own OrderCreated event, and one new key.
    assert rows() == (before[0] + 3, before[1] + 3, before[2] + 1)
    for placed in (first, keyed, total):
        stored = Order.objects.using(ALIAS).get(pk=placed.order.order_id)
        assert stored.total == placed.order.total and stored.correlation_id == placed.order.correlation_id
        event = OutboxMessage.objects.using(ALIAS).get(key=placed.order.order_id)
        assert event.type == topics.ORDER_CREATED and event.payload["correlationId"] == stored.correlation_id
    assert float(Order.objects.using(ALIAS).get(pk=total.order.order_id).total) == 30
    assert IdempotencyKey.objects.using(ALIAS).get(key="k-new").order_id == keyed.order.order_id


@pytest.mark.django_db
def test_an_order_the_database_refuses_fails_alone_and_its_neighbours_are_placed_once():
    taken = commands.place_order(ITEMS, 5).order
    # Its order id is already used: the shared transaction fails on that row.
    clash = placement(ITEMS, 6)
    clash = dataclasses.replace(clash, request=clash.request.model_copy(update={"orderId": taken.order_id}))
    before = rows()
    outcomes = commands.place_orders_together([placement(ITEMS, 7, "k-a"), clash, placement(ITEMS, 8, "k-b")])
    a, b = created(outcomes[0]), created(outcomes[2])
    assert isinstance(outcomes[1], Exception) and not isinstance(outcomes[1], Placed)
    assert rows() == (before[0] + 2, before[1] + 2, before[2] + 2)  # once each, despite the retry alone
    assert {k.key: k.order_id for k in IdempotencyKey.objects.using(ALIAS).filter(key__in=["k-a", "k-b"])} == {
        "k-a": a.order.order_id, "k-b": b.order.order_id}
    assert float(Order.objects.using(ALIAS).get(pk=taken.order_id).total) == 5  # the earlier order is untouched
    # Asked again, each key answers with its order, not a second one.
    assert commands.place_order(ITEMS, 7, "k-a").order.order_id == a.order.order_id
    assert rows() == (before[0] + 2, before[1] + 2, before[2] + 2)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the writer's thread has its own connection
def test_the_writer_groups_concurrent_orders_and_answers_each_caller():
    groups: list[int] = []

    def write_together(placements):
        groups.append(len(placements))
        return commands.place_orders_together(placements)

    writer = GroupWriter(write_together, max_group=4, alias=ALIAS, name="test-order-writer")
    requests = [placement(ITEMS, n + 1, f"k-{n % 5}") for n in range(10)]  # k-0..k-4 twice: replays

    async def place_all():
        results = await asyncio.gather(*(writer.submit(r) for r in requests), return_exceptions=True)
        # Later, alone: the writer comes back to life for the next order.
        return results, await writer.submit(placement(ITEMS, 50))

    try:
        results, later = asyncio.run(place_all())
    finally:
        writer.close()
    assert groups == [4, 4, 2, 1]  # what was waiting went together, at most max_group at a time
    for n, result in enumerate(results[:5]):
        assert created(result).order.total == n + 1
    for n, result in enumerate(results[5:]):  # the same key with another body: refused, each by itself
        assert isinstance(result, IdempotencyConflict) and str(result) == f"k-{n}"
    assert created(later).order.total == 50
    assert rows() == (6, 6, 5)
