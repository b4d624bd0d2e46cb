"""Concurrency on PostgreSQL, where several worker processes write one service's database at once.

Each thread holds its own database session (Django connections are per
thread), which is what locking and unique keys act on: the same as
consumers in separate processes. SQLite serialises writers by design
(IMMEDIATE transactions) and mongomock cannot model concurrent sessions,
so these run on PostgreSQL only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import DatabaseError, connections

from inventory.handlers import HANDLERS as INVENTORY_HANDLERS
from inventory.models import Stock
from orders.commands import place_order
from orders.handlers import HANDLERS as ORDER_HANDLERS
from orders.models import Order
from readmodel.handlers import HANDLERS as READMODEL_HANDLERS
from readmodel.models import OrderProjection
from shopsite.events import metrics, topics
from shopsite.events.consumer import BatchHandler, BatchProcessor, ConsumerSpec, Handler, RetryPolicy
from shopsite.events.envelope import Event
from shopsite.events.models import ProcessedEvent
from shopsite.events.unit_of_work import UnitOfWork, unit_of_work
from shopsite.services import BY_NAME
from tests.factories import Saga, message
from tests.service.helpers import deliver, outbox

pytestmark = [pytest.mark.backends("postgres"), pytest.mark.django_db(transaction=True, serialized_rollback=True)]


class Gate:
    """The first `parties` callers wait for each other (all inside their transactions); later callers pass."""

    def __init__(self, parties: int = 2):
        self.parties = parties
        self.barrier = threading.Barrier(parties, timeout=15)
        self.calls = 0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            self.calls += 1
            first = self.calls <= self.parties
        if first:
            self.barrier.wait()


def gated(handler: Handler, gate: Gate) -> Handler:
    """The handler, made to wait at the gate inside its transaction before it reads anything."""
    if isinstance(handler, BatchHandler):
        def run_batch(events: list[Event], uow: UnitOfWork) -> None:
            gate.wait()
            handler.apply(events, uow)

        return BatchHandler(run_batch)

    def run(event: Event, uow: UnitOfWork) -> None:
        gate.wait()
        handler(event, uow)

    return run


def in_threads(*jobs: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()  # a session left open would block dropping the test database

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


def processor(service: str, handlers: dict) -> BatchProcessor:
    return BatchProcessor(ConsumerSpec(BY_NAME[service], handlers), RetryPolicy(attempts=3, sleep=lambda _s: None))


def test_select_for_update_locks_the_stock_row_inside_a_unit_of_work():
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        with unit_of_work("inventory_service"):
            Stock.objects.using("inventory_service").select_for_update().get(sku="SKU-1")
            locked.set()
            release.wait(15)

    thread = threading.Thread(target=lambda: (holder(), connections.close_all()))
    thread.start()
    try:
        assert locked.wait(15)
        with pytest.raises(DatabaseError, match="could not obtain lock"), unit_of_work("inventory_service"):
            list(Stock.objects.using("inventory_service").select_for_update(nowait=True).filter(sku="SKU-1"))
        with unit_of_work("inventory_service"):  # row-level: another SKU is free
            assert Stock.objects.using("inventory_service").select_for_update(nowait=True).filter(sku="SKU-2").exists()
    finally:
        release.set()
        thread.join(15)


def test_two_consumers_of_one_group_racing_on_the_same_event_apply_it_once():
    created = Saga(items=[{"sku": "SKU-3", "qty": 4}]).created()
    redelivered = message(created)  # e.g. after a rebalance: both members hold the same message
    gate = Gate()
    handlers = {**INVENTORY_HANDLERS, topics.ORDER_CREATED: gated(INVENTORY_HANDLERS[topics.ORDER_CREATED], gate)}
    duplicates = metrics.EVENTS_CONSUMED.labels("inventory", topics.ORDER_CREATED, "duplicate")._value.get()

    in_threads(*[lambda: processor("inventory", handlers).process([redelivered])] * 2)

    stock = Stock.objects.using("inventory_service").get(sku="SKU-3")
    assert (stock.available, stock.reserved) == (996, 4)  # reserved once
    assert len(outbox("inventory", topics.INVENTORY_RESERVED)) == 1
    assert not outbox("inventory", topics.DEAD_LETTER)
    assert ProcessedEvent.objects.using("inventory_service").filter(event_id=created.event_id).count() == 1
    # The loser's transaction failed on the primary key, rolled back, and its retry saw the winner's row.
    assert metrics.EVENTS_CONSUMED.labels("inventory", topics.ORDER_CREATED, "duplicate")._value.get() == duplicates + 1


def test_events_of_one_order_handled_at_once_in_two_processes_lose_no_history():
    order = place_order([{"sku": "SKU-1", "qty": 1}], 10).order
    (created,) = outbox("orders", topics.ORDER_CREATED)
    saga = Saga(order_id=order.order_id)
    saga.correlation_id, saga.last, saga.clock = order.correlation_id, created, created.timestamp
    reserved, authorized = saga.reserved(), saga.authorized()
    gate = Gate()
    handlers = {t: gated(h, gate) for t, h in ORDER_HANDLERS.items()}

    in_threads(lambda: processor("orders", handlers).process([message(reserved)]),
               lambda: processor("orders", handlers).process([message(authorized)]))

    order.refresh_from_db(using="order_service")
    assert [h["type"] for h in order.history] == [topics.ORDER_CREATED, topics.INVENTORY_RESERVED,
                                                  topics.PAYMENT_AUTHORIZED]
    assert order.status == "PAYMENT_AUTHORIZED"
    assert Order.objects.using("order_service").count() == 1


def test_one_orders_projection_updated_at_once_in_two_processes_loses_no_entry():
    saga = Saga()
    created, reserved, authorized = saga.created(), saga.reserved(), saga.authorized()
    deliver("readmodel", [created])
    gate = Gate()
    handlers = {t: gated(h, gate) for t, h in READMODEL_HANDLERS.items()}

    in_threads(lambda: processor("readmodel", handlers).process([message(reserved)]),
               lambda: processor("readmodel", handlers).process([message(authorized)]))

    row = OrderProjection.objects.using("read_model_service").get(pk=saga.order_id)
    assert [e["eventId"] for e in row.timeline] == [created.event_id, reserved.event_id, authorized.event_id]
    assert row.current_status == "PAYMENT_AUTHORIZED"


def test_a_relay_steps_aside_while_another_process_relays_the_same_outbox():
    from shopsite.events import relay, relay_lock

    with unit_of_work("read_model_service") as uow:
        uow.emit(Saga().created())
    holding, release = threading.Event(), threading.Event()

    def other_process() -> None:
        with relay_lock.claim("read_model_service") as claim:
            assert claim.held and claim.exclusive
            holding.set()
            release.wait(15)

    thread = threading.Thread(target=lambda: (other_process(), connections.close_all()))
    thread.start()
    try:
        assert holding.wait(15)
        # Returns before touching the broker: the holder publishes these rows, and looks again when it lets go.
        assert relay.dispatch_pending("read_model_service", timeout=1) == 0
        assert relay.backlog("read_model_service")[0] == 1
    finally:
        release.set()
        thread.join(15)
