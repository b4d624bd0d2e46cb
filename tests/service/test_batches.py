"""Set-based handlers: a batch gives the same result as one message at a time, in a constant number of queries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from inventory.models import Reservation, Stock
from orders import lifecycle
from orders.models import Order
from payment.models import Payment
from readmodel.models import DeadLetter, OrderProjection
from shipping.models import Shipment
from shopsite.events import topics
from shopsite.events.consumer import BatchHandler, BatchProcessor, ConsumerSpec, RetryPolicy
from shopsite.events.envelope import Event
from shopsite.events.models import OutboxMessage, ProcessedEvent
from shopsite.events.registry import consumer_spec
from shopsite.services import BY_NAME, SERVICES
from tests.factories import Saga, message
from tests.service.helpers import deliver, outbox

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]

STATE_MODELS = {"orders": [Order], "inventory": [Reservation, Stock], "payment": [Payment],
                "shipping": [Shipment], "readmodel": [OrderProjection, DeadLetter]}
# Set from the clock or random when the row or event is made: differ between any two runs.
GENERATED = {"created_at", "updated_at", "authorized_at", "refunded_at", "auth_id", "tracking_id", "refund_id", "at"}


def place(created: Event) -> None:
    """The order service's row for an OrderCreated made by the test (what place_order writes)."""
    Order(order_id=created.order_id, items=[i.model_dump() for i in created.payload.items],
          total=created.payload.total, status=lifecycle.CREATED, history=[lifecycle.entry_for(created)],
          created_at=created.timestamp, updated_at=created.timestamp,
          correlation_id=created.correlation_id).save(using=BY_NAME["orders"].alias, force_insert=True)


def handles(service: str, event: Event) -> bool:
    return event.type in consumer_spec(BY_NAME[service]).handlers


def scenario() -> tuple[list[Event], list[Event]]:
    """(OrderCreated events to place, every event in the order consumers see them).

    Order x takes most of SKU-3, so order y (created next) fails on it; y's
    inventory retry fails again; y's OrderCreated comes a second time; z
    goes its way alongside, and x runs to SHIPPED.
    """
    x = Saga(items=[{"sku": "SKU-3", "qty": 700}], total=70.5)
    y = Saga(items=[{"sku": "SKU-3", "qty": 400}, {"sku": "SKU-1", "qty": 1}], total=41)
    z = Saga(items=[{"sku": "SKU-1", "qty": 2}], total=Decimal("19.99"))
    created_x, created_y, created_z = x.created(), y.created(), z.created()
    failed_y = y.next(topics.INVENTORY_FAILED, {"reason": "insufficient stock for SKU-3"})
    retry_y = y.next(topics.RETRY_REQUESTED, {"step": "inventory"})
    events = [created_x, created_y, x.reserved(), created_z, failed_y, retry_y, created_y, x.authorized(),
              z.reserved(), retry_y, x.shipped(), z.next(topics.RETRY_REQUESTED, {"step": "payment"}), created_x]
    return [created_x, created_y, created_z], events


def snapshot(service: str) -> dict[str, Any]:
    """A service's whole state and outbox, without what is generated per run (ids, clock)."""
    alias = BY_NAME[service].alias
    state: dict[str, Any] = {}
    for model in STATE_MODELS[service]:
        fields = [f.attname for f in model._meta.concrete_fields if f.name not in GENERATED]
        state[model.__name__] = sorted(([getattr(row, f) for f in fields] for row in model.objects.using(alias).all()),
                                       key=repr)
    state["outbox"] = [_stable(row.payload) for row in OutboxMessage.objects.using(alias).order_by("id")]
    state["processed"] = sorted(ProcessedEvent.objects.using(alias).values_list("consumer", "event_id"))
    return state


def _stable(wire: dict[str, Any]) -> dict[str, Any]:
    payload = {k: v for k, v in wire["payload"].items() if k not in {"authId", "trackingId", "refundId"}}
    return {**{k: v for k, v in wire.items() if k not in {"eventId", "timestamp"}}, "payload": payload}


def wipe(service: str, stock: list[Stock]) -> None:
    alias = BY_NAME[service].alias
    for model in [*STATE_MODELS[service], OutboxMessage, ProcessedEvent]:
        model.objects.using(alias).all().delete()
    if service == "inventory":
        Stock.objects.using(alias).bulk_create(stock)


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_a_batch_gives_the_same_result_as_one_message_at_a_time(service):
    placed, events = scenario()
    mine = [e for e in events if handles(service, e)]
    assert len({e.type for e in mine}) >= 2, "the scenario must give every service several kinds of event"
    seeded = list(Stock.objects.using(BY_NAME["inventory"].alias).all())
    results = []
    for batches in ([[e] for e in mine], [mine]):  # one message per batch, then all in one batch
        wipe(service, seeded)
        if service == "orders":
            for created in placed:
                place(created)
        for batch in batches:
            deliver(service, batch)
        results.append(snapshot(service))
    one_at_a_time, batched = results
    assert batched == one_at_a_time
    # Not vacuous: the scenario gave the service work, and the emitting services emitted.
    assert batched["processed"] and batched[STATE_MODELS[service][0].__name__]
    assert batched["outbox"] or service in ("orders", "readmodel")


def test_a_batch_of_one_order_reserves_once_and_its_retry_sees_the_batch():
    saga = Saga(items=[{"sku": "SKU-4", "qty": 990}])
    other = Saga(items=[{"sku": "SKU-4", "qty": 20}])
    created, contender = saga.created(), other.created()
    retry = other.next(topics.RETRY_REQUESTED, {"step": "inventory"})
    deliver("inventory", [created, contender, retry, created])
    row = Stock.objects.using("inventory_service").get(sku="SKU-4")
    assert (row.available, row.reserved) == (10, 990)  # the first order got the units, once; nothing was lost
    assert [e.order_id for e in outbox("inventory", topics.INVENTORY_RESERVED)] == [saga.order_id]
    failures = outbox("inventory", topics.INVENTORY_FAILED)
    assert [e.causation_id for e in failures] == [contender.event_id, retry.event_id]


def test_a_failing_message_in_a_batch_leaves_its_neighbours_applied_exactly_once():
    sagas = [Saga(items=[{"sku": "SKU-2", "qty": 3}]) for _ in range(3)]
    created = [s.created() for s in sagas]
    poison = created[1].event_id
    handlers = dict(consumer_spec(BY_NAME["inventory"]).handlers)
    real = handlers[topics.ORDER_CREATED]
    assert isinstance(real, BatchHandler)

    def fails_on_poison(events: list[Event], uow) -> None:
        real.apply(events, uow)  # writes first, so the failure must roll back the neighbours' effects too
        if any(e.event_id == poison for e in events):
            raise RuntimeError("database said no")

    flaky = BatchHandler(fails_on_poison)
    handlers.update({topics.ORDER_CREATED: flaky, topics.ORDER_SHIPPED: flaky})
    processor = BatchProcessor(ConsumerSpec(BY_NAME["inventory"], handlers),
                               RetryPolicy(attempts=2, sleep=lambda _s: None))
    processor.process([message(e) for e in created])
    processor.process([message(e) for e in created])  # and redelivered: all duplicates now

    row = Stock.objects.using("inventory_service").get(sku="SKU-2")
    assert (row.available, row.reserved) == (994, 6)  # two orders, each reserved once
    assert sorted(e.order_id for e in outbox("inventory", topics.INVENTORY_RESERVED)) == sorted(
        [sagas[0].order_id, sagas[2].order_id])
    # Dead-lettered on each delivery: a dead letter is not "processed", so its replay gets handled.
    letters = outbox("inventory", topics.DEAD_LETTER)
    assert [letter.payload.originalEventId for letter in letters] == [poison, poison]
    assert not Reservation.objects.using("inventory_service").filter(pk=sagas[1].order_id).exists()
    processed = set(ProcessedEvent.objects.using("inventory_service").values_list("event_id", flat=True))
    assert processed == {created[0].event_id, created[2].event_id}


def test_an_event_for_an_unknown_order_in_a_batch_is_dead_lettered_and_the_rest_recorded_once():
    sagas = [Saga() for _ in range(3)]
    for saga in sagas:
        place(saga.created())
    stray = Saga().reserved()
    batch = [sagas[0].reserved(), stray, sagas[1].reserved(), sagas[2].reserved(), sagas[2].authorized()]
    deliver("orders", batch)
    deliver("orders", batch)
    orders = {o.order_id: o for o in Order.objects.using("order_service").all()}
    assert [len(orders[s.order_id].history) for s in sagas] == [2, 2, 3]
    assert orders[sagas[2].order_id].status == lifecycle.PAYMENT_AUTHORIZED
    letters = outbox("orders", topics.DEAD_LETTER)  # once per delivery: dead letters are not "processed"
    assert [letter.payload.originalEventId for letter in letters] == [stray.event_id, stray.event_id]
    assert "no order" in letters[0].payload.error


def happy_events(n: int) -> list[Event]:
    """n orders' happy paths, placed in the order service, in the order a busy pipeline delivers them."""
    sagas = [Saga(items=[{"sku": "SKU-1", "qty": 1}, {"sku": f"SKU-{2 + i % 3}", "qty": 2}]) for i in range(n)]
    hops = [[s.created() for s in sagas], [s.reserved() for s in sagas], [s.authorized() for s in sagas],
            [s.shipped() for s in sagas]]
    for created in hops[0]:
        place(created)
    return [e for hop in hops for e in hop]


def queries(service: str, events: list[Event]) -> int:
    mine = [message(e) for e in events if handles(service, e)]
    processor = BatchProcessor(consumer_spec(BY_NAME[service]), RetryPolicy(attempts=1, sleep=lambda _s: None))
    with CaptureQueriesContext(connections[BY_NAME[service].alias]) as captured:
        processor.process(mine)
    return len(captured.captured_queries)


@pytest.mark.backends("sqlite", "postgres")  # counts SQL statements; MongoDB has no query log to count
@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_a_batch_takes_the_same_number_of_queries_for_3_orders_as_for_40(service):
    queries(service, happy_events(1))  # first use: the simulator's settings row is created
    few, many = queries(service, happy_events(3)), queries(service, happy_events(40))
    assert few == many, f"{service}: {few} queries for 3 orders, {many} for 40"
    assert many <= 12, f"{service}: {many} queries for one batch"
    # and every event was applied, not skipped
    per_order = sum(1 for t in (topics.ORDER_CREATED, topics.INVENTORY_RESERVED, topics.PAYMENT_AUTHORIZED,
                                topics.ORDER_SHIPPED) if t in consumer_spec(BY_NAME[service]).handlers)
    assert ProcessedEvent.objects.using(BY_NAME[service].alias).count() == per_order * (1 + 3 + 40)
