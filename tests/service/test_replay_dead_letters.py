"""manage.py replay_dead_letters: filters, oldest first, the replay limit, dry run."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from readmodel.models import DeadLetter
from shopsite.events import topics
from shopsite.events.envelope import new_event
from shopsite.events.models import OutboxMessage
from tests.factories import T0, Saga
from tests.service.helpers import deliver

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]

ALIAS = "read_model_service"


def dead_letter(consumer: str, original, source_topic: str, error: str, minutes: int, offset: int):
    payload = {"originalType": original.get("type", "unknown") if isinstance(original, dict) else "unknown",
               "originalEventId": original.get("eventId", "unknown") if isinstance(original, dict) else "unknown",
               "orderId": original.get("key") if isinstance(original, dict) else None,
               "error": error, "payload": original, "sourceTopic": source_topic, "partition": 0, "offset": offset,
               "headers": {}, "consumer": consumer}
    return new_event(topics.DEAD_LETTER, payload, correlation_id="c-dlq", at=T0 + timedelta(minutes=minutes),
                     key=payload["orderId"] or f"{source_topic}-0")


@pytest.fixture
def letters():
    """Five dead letters, stored by the read model as they would be live."""
    created, shipped, authorized = Saga().created(), Saga().shipped(), Saga().authorized()
    bad = Saga().created().to_wire()
    bad["payload"]["items"][0]["qty"] = -1
    events = [
        dead_letter("inventory", created.to_wire(), topics.ORDER_CREATED, "handler failed: OperationalError: locked",
                    minutes=2, offset=1),
        dead_letter("payment", authorized.to_wire(), topics.PAYMENT_AUTHORIZED, "handler failed: KeyError", 1, 2),
        dead_letter("inventory", bad, topics.ORDER_CREATED, "invalid payload: qty must be > 0", 3, 3),
        dead_letter("orders", shipped.to_wire(), topics.ORDER_SHIPPED, "handler failed: OperationalError: locked",
                    4, 4),
        dead_letter("inventory", "not json at all", topics.ORDER_CREATED, "not JSON", 30, 5),
    ]
    deliver("readmodel", events)
    return {"created": created, "authorized": authorized, "shipped": shipped, "bad": bad}


def run(*args: str) -> str:
    out = StringIO()
    call_command("replay_dead_letters", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def republished() -> list[str]:
    return list(OutboxMessage.objects.using(ALIAS).exclude(type=topics.DEAD_LETTER).order_by("id")
                .values_list("event_id", flat=True))


def listed_ids(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if ":" in line.split()[0] and line.split()[0][0] != "("]


def test_dry_run_lists_what_matches_oldest_first_and_publishes_nothing(letters):
    text = run("--dry-run", "--consumer=inventory", f"--until={(T0 + timedelta(minutes=10)).isoformat()}")
    assert "2 dead letters match (dry run: nothing is published)" in text
    assert listed_ids(text) == [f"{topics.ORDER_CREATED}:0:1", f"{topics.ORDER_CREATED}:0:3"]
    assert "would replay: 1   refused: 1" in text
    assert "refused: the original message is not a valid event" in text
    assert republished() == []
    assert set(DeadLetter.objects.using(ALIAS).values_list("status", flat=True)) == {DeadLetter.PENDING}

    text = run("--dry-run", "--error=LOCKED")  # case-insensitive, any consumer
    assert listed_ids(text) == [f"{topics.ORDER_CREATED}:0:1", f"{topics.ORDER_SHIPPED}:0:4"]
    text = run("--dry-run", f"--type={topics.PAYMENT_AUTHORIZED}", f"--since={T0.isoformat()}")
    assert listed_ids(text) == [f"{topics.PAYMENT_AUTHORIZED}:0:2"]
    assert run("--dry-run", "--consumer=shipping").startswith("0 dead letters match")


def test_replays_in_order_and_stops_at_the_replay_limit(letters):
    text = run()
    assert "5 dead letters match" in text
    assert "replayed: 3   refused: 2   (limit 3 replays per message)" in text
    # Oldest first: the payment letter (minute 1) before the inventory one (minute 2).
    assert republished() == [letters["authorized"].event_id, letters["created"].event_id,
                             letters["shipped"].event_id]
    published = OutboxMessage.objects.using(ALIAS).get(event_id=letters["created"].event_id)
    assert published.topic == topics.ORDER_CREATED and published.payload["headers"] == {"x-replay-count": 1}

    # Replayed letters are done unless asked for again; then the limit holds.
    assert run().startswith("2 dead letters match")
    for _ in range(2):
        run("--include-replayed", "--consumer=orders")
    text = run("--include-replayed", "--consumer=orders")
    assert "replayed: 0   refused: 1" in text and "limit 3" in text
    assert OutboxMessage.objects.using(ALIAS).filter(event_id=letters["shipped"].event_id).count() == 3
