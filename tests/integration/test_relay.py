"""The outbox relay against a real broker: in order per key, marked only after the broker's ack."""

import json
import time
import uuid

import pytest
from confluent_kafka import Consumer

from orders.commands import place_order
from shopsite.events import kafka, relay, topics
from shopsite.events.models import OutboxMessage
from shopsite.events.unit_of_work import unit_of_work
from tests.factories import Saga

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db, pytest.mark.kafka]


def read_topics(bootstrap: str, names: list[str], want: int, key: str, timeout: float = 30.0) -> list:
    """The first `want` messages with `key` on the topics, read by a fresh consumer group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 6000})
    consumer.subscribe(names)
    found: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < want and time.monotonic() < deadline:
            found += [m for m in consumer.consume(100, 0.5) if m.error() is None and m.key() == key.encode()]
    finally:
        consumer.close()
    return found


def test_relay_publishes_in_order_and_marks_only_acknowledged_rows(kafka_settings):
    saga = Saga()
    events = saga.happy_path()
    with unit_of_work("read_model_service") as uow:
        for event in events:
            uow.emit(event)
    assert OutboxMessage.objects.using("read_model_service").filter(dispatched=False).count() == 4

    assert relay.dispatch_pending("read_model_service") == 4

    rows = OutboxMessage.objects.using("read_model_service").order_by("id")
    assert all(r.dispatched and r.dispatched_at for r in rows)
    received = read_topics(kafka_settings, [e.topic for e in events], 4, saga.order_id)
    by_id = {json.loads(m.value())["eventId"]: json.loads(m.value()) for m in received}
    assert by_id == {e.event_id: e.to_wire() for e in events}  # exactly what the handlers produced
    assert relay.dispatch_pending("read_model_service") == 0


def test_rows_of_one_key_keep_their_order_on_one_partition(kafka_settings):
    order_id = str(uuid.uuid4())
    saga = Saga(order_id=order_id)
    created = saga.created()
    retries = [saga.next(topics.RETRY_REQUESTED, {"step": step}, cause=created)
               for step in ["inventory", "payment", "shipping"] * 10]
    with unit_of_work("order_service") as uow:
        for event in retries:
            uow.emit(event)
    relay.dispatch_pending("order_service")
    mine = read_topics(kafka_settings, [topics.RETRY_REQUESTED], 30, order_id)
    assert [json.loads(m.value())["eventId"] for m in mine] == [e.event_id for e in retries]
    assert len({m.partition() for m in mine}) == 1


def test_when_the_broker_does_not_acknowledge_rows_stay_pending(settings):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    kafka.close_shared_producer(timeout=0)
    settings.KAFKA_BOOTSTRAP_SERVERS = dead
    try:
        placed = place_order([{"sku": "SKU-1", "qty": 1}], 5)
        assert relay.dispatch_pending("order_service", timeout=1.5) == 0
        row = OutboxMessage.objects.using("order_service").get(key=placed.order.order_id)
        assert not row.dispatched and row.attempts == 1
        assert "no delivery report" in row.last_error
        assert relay.backlog("order_service")[0] == 1
    finally:
        kafka.close_shared_producer(timeout=0)


@pytest.mark.backends("postgres")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_relays_of_one_outbox_in_two_processes_publish_each_row_once(kafka_settings, monkeypatch):
    """Two worker processes relay the same outboxes; the advisory claim keeps them from publishing rows twice."""
    import threading

    from django.db import connections

    class PerCallLocks(dict):  # two processes share no in-process lock: only the database can order them
        def __missing__(self, alias: str) -> threading.Lock:
            return threading.Lock()

    monkeypatch.setattr(relay, "_locks", PerCallLocks())

    events = [Saga(order_id=f"relay-race-{uuid.uuid4()}").created() for _ in range(300)]
    with unit_of_work("read_model_service") as uow:
        for event in events:
            uow.emit(event)
    counts: list[int] = []

    def relay_in_its_own_session() -> None:
        try:
            counts.append(relay.dispatch_pending("read_model_service", batch_size=50))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=relay_in_its_own_session) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(counts) == 300 and relay.backlog("read_model_service")[0] == 0
    keys = {e.key for e in events}
    consumer = Consumer({"bootstrap.servers": kafka_settings, "group.id": f"test-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000})
    consumer.subscribe([topics.ORDER_CREATED])
    seen: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and len(seen) < 300:
            seen += [m.key().decode() for m in consumer.consume(500, 0.5) if m.error() is None and m.key().decode() in keys]
        time.sleep(1)  # anything published twice would have arrived by now
        seen += [m.key().decode() for m in consumer.consume(500, 0.5) if m.error() is None and m.key().decode() in keys]
    finally:
        consumer.close()
    assert len(seen) == 300 and set(seen) == keys  # every row once, none twice
