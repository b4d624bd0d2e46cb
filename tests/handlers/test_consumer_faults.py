"""Consumer runtime faults, driven without Kafka: dead-letter loops, the budget, transient database errors."""

import json

import pytest

from readmodel.models import DeadLetter
from shopsite.events import metrics, topics
from shopsite.events.consumer import BatchProcessor, DeadLetterBudget, DeadLetterLimitReached, RetryPolicy
from shopsite.events.registry import consumer_spec
from shopsite.services import BY_NAME
from tests.factories import Saga, raw_message
from tests.handlers.helpers import deliver, outbox

pytestmark = pytest.mark.django_db


def dead_letters_counted(service, topic, reason):
    return metrics.DEAD_LETTERS.labels(service, topic, reason)._value.get()


@pytest.mark.parametrize("value", [b"junk", b'{"type": "ops.DeadLetter.v1"}', b"[" * 5000 + b"]" * 5000])
def test_an_unreadable_message_on_the_dead_letter_topic_is_never_dead_lettered_onto_it(value):
    before = dead_letters_counted("readmodel", topics.DEAD_LETTER, "unreadable_dead_letter")
    deliver("readmodel", [raw_message(value, topic=topics.DEAD_LETTER, key="k-dlq")])
    assert not outbox("readmodel", topics.DEAD_LETTER)  # no loop
    assert dead_letters_counted("readmodel", topics.DEAD_LETTER, "unreadable_dead_letter") - before == 1


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
