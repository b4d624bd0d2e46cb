"""Consumer runtime faults, driven without Kafka: dead-letter loops, the budget, transient database errors."""

import json
import sqlite3

import pytest
from django.db import connections

from readmodel.models import DeadLetter
from shopsite.events import metrics, topics
from shopsite.events.consumer import (BatchProcessor, DeadLetterBudget, DeadLetterLimitReached, RetryPolicy,
                                     TransientFailure)
from shopsite.events.registry import consumer_spec
from shopsite.services import BY_NAME
from tests.factories import Saga, message, raw_message
from tests.service.helpers import deliver, outbox

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def dead_letters_counted(service, topic, reason):
    return metrics.DEAD_LETTERS.labels(service, topic, reason)._value.get()


@pytest.mark.parametrize("value", [b"junk", b'{"type": "ops.DeadLetter.v1"}', b"[" * 5000 + b"]" * 5000])
def test_an_unreadable_message_on_the_dead_letter_topic_is_never_dead_lettered_onto_it(value, client):
    before = dead_letters_counted("readmodel", topics.DEAD_LETTER, "unreadable_dead_letter")
    unreadable = raw_message(value, topic=topics.DEAD_LETTER, key="k-dlq")
    deliver("readmodel", [unreadable])
    deliver("readmodel", [unreadable])  # redelivered: still one row
    assert not outbox("readmodel", topics.DEAD_LETTER)  # no loop
    assert dead_letters_counted("readmodel", topics.DEAD_LETTER, "unreadable_dead_letter") - before == 2
    (row,) = DeadLetter.objects.using("read_model_service").all()  # stored for the operator, on /dlq
    assert row.source_topic == topics.DEAD_LETTER and row.offset == unreadable.offset()
    assert row.original_type == "unreadable dead letter" and row.payload == value[:64_000].decode()
    page = client.get("/dlq")
    assert page.status_code == 200 and b"<code>k-dlq</code>" in page.content


def test_a_dead_letter_for_an_over_long_correlation_id_is_itself_readable():
    bad = Saga().created().to_wire()
    bad["correlationId"] = "c" * 200
    bad["eventId"] = "e" * 300  # not a UUID either: it must not become the dead letter's causationId
    deliver("inventory", [raw_message(json.dumps(bad).encode(), key=bad["key"])])
    rows = outbox("inventory", topics.DEAD_LETTER)  # decodes: the dead letter's envelope is valid
    (letter,) = rows
    assert len(letter.correlation_id) <= 64 and letter.causation_id is None
    assert "correlationId" in letter.payload.error
    deliver("readmodel", rows)
    stored = DeadLetter.objects.using("read_model_service").get()
    assert stored.payload["correlationId"] == "c" * 200  # the original is kept as it was
    assert not outbox("readmodel", topics.DEAD_LETTER)


def test_a_flood_bigger_than_the_budget_makes_progress_one_budget_at_a_time():
    clock = {"now": 0.0}
    processor = BatchProcessor(consumer_spec(BY_NAME["inventory"]), RetryPolicy(sleep=lambda _s: None),
                               DeadLetterBudget(limit=3, window=60, clock=lambda: clock["now"]))
    good = Saga().created()
    batch = [raw_message(b"junk", key=f"k{i}") for i in range(5)]
    batch.append(raw_message(good.to_bytes(), key=good.key))
    with pytest.raises(DeadLetterLimitReached) as first:
        processor.process(batch)
    assert first.value.done == 3  # the prefix that fits was applied: commit it, come back to the rest
    assert len(outbox("inventory", topics.DEAD_LETTER)) == 3
    rest = batch[first.value.done:]
    with pytest.raises(DeadLetterLimitReached) as again:
        processor.process(rest)  # still within the window: nothing more
    assert again.value.done == 0 and len(outbox("inventory", topics.DEAD_LETTER)) == 3
    clock["now"] = 61.0
    processor.process(rest)
    assert len(outbox("inventory", topics.DEAD_LETTER)) == 5
    assert len(outbox("inventory", topics.INVENTORY_RESERVED)) == 1


@pytest.mark.backends("sqlite")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_sqlite_locked_by_another_connection_is_waited_out_never_dead_lettered(settings):
    settings.CONSUMER_TRANSIENT_BACKOFF_SECONDS = 0.1
    settings.CONSUMER_TRANSIENT_BACKOFF_MAX_SECONDS = 0.4
    settings.CONSUMER_TRANSIENT_RETRY_SECONDS = 2.0
    alias = BY_NAME["inventory"].alias
    locker = sqlite3.connect(connections[alias].settings_dict["NAME"], uri=True, isolation_level=None)
    created = Saga(items=[{"sku": "SKU-3", "qty": 1}]).created()
    waits: list[float] = []
    release_after = {"waits": None}

    def sleep(seconds):
        waits.append(seconds)
        if len(waits) == release_after["waits"]:
            locker.execute("ROLLBACK")

    processor = BatchProcessor(consumer_spec(BY_NAME["inventory"]), RetryPolicy(sleep=sleep))
    try:
        # Locked for longer than the whole backoff: pause (the consumer comes back), nothing written.
        locker.execute("BEGIN IMMEDIATE")
        with pytest.raises(TransientFailure) as paused:
            processor.process([message(created)])
        assert paused.value.done == 0
        assert waits == [0.1, 0.2, 0.4, 0.4, 0.4, 0.4]  # exponential, capped, 1.9 s in all
        assert not outbox("inventory")  # in particular no dead letter
        # Locked for a while (longer than the old 3 tries in 0.3 s): waited out, applied once.
        waits.clear()
        release_after["waits"] = 4
        processor.process([message(created)])
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
    assert len(waits) == 4
    assert len(outbox("inventory", topics.INVENTORY_RESERVED)) == 1
    assert not outbox("inventory", topics.DEAD_LETTER)


@pytest.mark.backends("postgres")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_postgresql_deadlock_is_retried_never_dead_lettered(settings, caplog):
    """Two connections lock two stock rows in opposite orders; PostgreSQL aborts the consumer's transaction."""
    import threading

    import psycopg

    settings.CONSUMER_TRANSIENT_BACKOFF_SECONDS = 0.1
    alias = BY_NAME["inventory"].alias
    params = connections[alias].get_connection_params()
    other = psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "password", "host", "port")})
    other.execute("SET deadlock_timeout = '30s'")  # the consumer's side (1 s) detects it: the consumer is the victim
    other.execute("UPDATE stock SET available = available WHERE _id = 'SKU-7'")  # holds SKU-7
    watcher = psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "password", "host", "port")},
                              autocommit=True)

    def close_the_cycle():
        # Once the consumer waits for SKU-7 (holding SKU-6), ask for SKU-6: a deadlock.
        for _ in range(600):
            waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()").fetchone()[0]
            if waiting:
                break
            threading.Event().wait(0.05)
        other.execute("UPDATE stock SET available = available WHERE _id = 'SKU-6'")
        other.commit()

    closer = threading.Thread(target=close_the_cycle, daemon=True)
    waits: list[float] = []

    def sleep(seconds):
        waits.append(seconds)
        closer.join(30)  # the other transaction finishes; the retry then goes through

    created = Saga(items=[{"sku": "SKU-6", "qty": 1}, {"sku": "SKU-7", "qty": 1}]).created()
    processor = BatchProcessor(consumer_spec(BY_NAME["inventory"]), RetryPolicy(sleep=sleep))
    closer.start()
    try:
        processor.process([message(created)])
    finally:
        closer.join(30)
        other.close()
        watcher.close()
    assert waits, "no deadlock happened: the consumer was never told to retry"
    backoffs = [r for r in caplog.records if r.getMessage() == "transient database error; backing off"]
    assert "deadlock detected" in backoffs[0].error
    assert len(outbox("inventory", topics.INVENTORY_RESERVED)) == 1
    assert not outbox("inventory", topics.DEAD_LETTER)
