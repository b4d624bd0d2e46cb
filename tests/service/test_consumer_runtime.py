"""The shared runtime, driven without Kafka: dedupe, dead letters, retries, batch isolation."""

import json

import pytest

from inventory.models import Stock
from readmodel.models import OrderProjection
from shopsite.events import metrics, topics
from shopsite.events.consumer import BatchProcessor, ConsumerSpec, PermanentHandlerError, RetryPolicy
from shopsite.events.models import ProcessedEvent
from shopsite.services import BY_NAME
from tests.factories import Saga, message, raw_message
from tests.service.helpers import deliver, outbox

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def consumed(service, topic, outcome):
    return metrics.EVENTS_CONSUMED.labels(service, topic, outcome)._value.get()


def test_a_duplicate_event_is_skipped_counted_and_changes_nothing():
    created = Saga(items=[{"sku": "SKU-2", "qty": 3}]).created()
    before = consumed("inventory", topics.ORDER_CREATED, "duplicate")
    deliver("inventory", [created])
    deliver("inventory", [created])  # redelivered in a later batch
    deliver("inventory", [created, created])  # and twice within one batch
    stock = Stock.objects.using("inventory_service").get(sku="SKU-2")
    assert (stock.available, stock.reserved) == (997, 3)
    assert len(outbox("inventory", topics.INVENTORY_RESERVED)) == 1
    assert consumed("inventory", topics.ORDER_CREATED, "duplicate") - before == 3
    assert ProcessedEvent.objects.using("inventory_service").filter(event_id=created.event_id).count() == 1


def test_poison_messages_are_dead_lettered_and_the_batch_goes_on():
    good = Saga().created()
    invalid = Saga().created().to_wire()
    invalid["payload"]["items"] = []
    batch = [
        raw_message(b"not json {{", key="k1"),
        raw_message(json.dumps(invalid).encode(), key=invalid["key"]),
        message(good),
    ]
    BatchProcessor(ConsumerSpec(BY_NAME["readmodel"], _readmodel_handlers())).process(batch)
    assert OrderProjection.objects.using("read_model_service").filter(pk=good.order_id).exists()
    letters = outbox("readmodel", topics.DEAD_LETTER)
    assert [dl.payload.error.split(":")[0] for dl in letters] == ["not JSON", "invalid order.OrderCreated.v1 payload"]
    garbage, schema = (dl.payload.model_dump() for dl in letters)
    assert garbage["payload"] == "not json {{" and garbage["orderId"] == "k1"
    assert schema["originalEventId"] == invalid["eventId"] and schema["orderId"] == invalid["key"]
    assert schema["sourceTopic"] == topics.ORDER_CREATED and schema["offset"] == batch[1].offset()
    assert schema["consumer"] == "readmodel"


def test_an_event_on_the_wrong_topic_is_dead_lettered():
    shipped = Saga().shipped()
    bad = raw_message(shipped.to_bytes(), topic=topics.ORDER_CREATED, key=shipped.key)
    deliver("inventory", [bad])
    (letter,) = outbox("inventory", topics.DEAD_LETTER)
    assert "does not belong on topic order.OrderCreated.v1" in letter.payload.error


def test_a_failing_handler_is_retried_then_dead_lettered_without_blocking_its_neighbours():
    calls = {"n": 0}

    def flaky(event, uow):
        calls["n"] += 1
        raise RuntimeError("database said no")

    spec = ConsumerSpec(BY_NAME["readmodel"], {**_readmodel_handlers(), topics.ORDER_SHIPPED: flaky})
    saga = Saga()
    created, *_, shipped = saga.happy_path()
    other = Saga().created()
    BatchProcessor(spec, RetryPolicy(attempts=3, sleep=lambda _s: None)).process(
        [message(created), message(shipped), message(other)]
    )
    assert calls["n"] == 1 + 3  # once in the batch, then three isolated attempts
    assert OrderProjection.objects.using("read_model_service").filter(pk__in=[created.key, other.key]).count() == 2
    (letter,) = outbox("readmodel", topics.DEAD_LETTER)
    assert letter.payload.error.startswith("handler failed after 3 attempt(s): RuntimeError: database said no")
    assert letter.payload.originalEventId == shipped.event_id
    # Not marked processed: a replay of the dead letter must be handled, not skipped as a duplicate.
    assert not ProcessedEvent.objects.using("read_model_service").filter(event_id=shipped.event_id).exists()


def test_a_permanent_error_is_dead_lettered_without_retries():
    calls = {"n": 0}

    def refuses(event, uow):
        calls["n"] += 1
        raise PermanentHandlerError("no such order")

    spec = ConsumerSpec(BY_NAME["readmodel"], {topics.ORDER_CREATED: refuses})
    BatchProcessor(spec, RetryPolicy(attempts=5, sleep=lambda _s: None)).process([message(Saga().created())])
    assert calls["n"] == 2  # the single-message batch, then one isolated attempt that is not retried
    (letter,) = outbox("readmodel", topics.DEAD_LETTER)
    assert letter.payload.error == "handler failed after 1 attempt(s): PermanentHandlerError: no such order"


def test_a_rolled_back_batch_leaves_no_partial_effects():
    def explode_after_write(event, uow):
        from readmodel.projection import project

        project(event, uow)
        raise RuntimeError("boom after writing")

    spec = ConsumerSpec(BY_NAME["readmodel"], {topics.ORDER_CREATED: explode_after_write})
    event = Saga().created()
    BatchProcessor(spec, RetryPolicy(attempts=2, sleep=lambda _s: None)).process([message(event)])
    assert not OrderProjection.objects.using("read_model_service").filter(pk=event.order_id).exists()
    assert not ProcessedEvent.objects.using("read_model_service").filter(event_id=event.event_id).exists()


def _readmodel_handlers():
    from readmodel.handlers import HANDLERS

    return HANDLERS


def test_hostile_json_is_dead_lettered_and_its_neighbours_applied():
    """Nested 100,000 deep (RecursionError), a 5,000-digit number (ValueError): dead letters, not crashes."""
    good = Saga().created()
    nested = b'{"payload": ' * 100_000 + b"{}" + b"}" * 100_000
    huge = b'{"eventId": "x", "total": ' + b"9" * 5000 + b"}"
    batch = [raw_message(nested, key="k-nested"), raw_message(huge, key="k-huge"), message(good)]
    BatchProcessor(ConsumerSpec(BY_NAME["readmodel"], _readmodel_handlers())).process(batch)
    assert OrderProjection.objects.using("read_model_service").filter(pk=good.order_id).exists()
    letters = outbox("readmodel", topics.DEAD_LETTER)
    assert [dl.payload.orderId for dl in letters] == ["k-nested", "k-huge"]
    assert "nested too deeply" in letters[0].payload.error and "digits" in letters[1].payload.error
    # The originals are kept as (truncated) text: re-parsing them must not fail the dead letter itself.
    assert letters[0].payload.payload.startswith('{"payload": {"payload":')
    # And the dead letters themselves are readable by the dead-letter consumer.
    deliver("readmodel", letters)
    assert len(outbox("readmodel", topics.DEAD_LETTER)) == 2


def test_a_decoder_bug_dead_letters_the_one_message_instead_of_stopping_the_consumer(monkeypatch):
    from shopsite.events import consumer

    real_decode = consumer.decode

    def decode_with_a_bug(raw):
        if raw == b"trips the bug":
            raise KeyError("a bug the decoder should never have")
        return real_decode(raw)

    monkeypatch.setattr(consumer, "decode", decode_with_a_bug)
    good = Saga().created()
    BatchProcessor(ConsumerSpec(BY_NAME["readmodel"], _readmodel_handlers())).process(
        [raw_message(b"trips the bug", key="k-bug"), message(good)])
    assert OrderProjection.objects.using("read_model_service").filter(pk=good.order_id).exists()
    (letter,) = outbox("readmodel", topics.DEAD_LETTER)
    assert letter.payload.error.startswith("undecodable: KeyError")
