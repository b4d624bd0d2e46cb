"""PostgreSQL: the relay's marks commit without waiting for the WAL flush, and only they do.

A pooled connection serves other threads afterwards: the setting must end
with the relay's own transaction, and never reach into a transaction it did
not open (a consumer's batch, an order).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.db import connections, transaction

from shopsite.events import relay
from shopsite.events.models import OutboxMessage
from shopsite.events.relaxed_commit import relaxed

pytestmark = [pytest.mark.backends("postgres"), pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ALIAS = "payment_service"


def _synchronous_commit() -> str:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_the_relay_marks_rows_sent_in_a_transaction_that_does_not_wait_for_the_flush():
    rows = OutboxMessage.objects.using(ALIAS).bulk_create(
        OutboxMessage(event_id=f"e{i}", type="t", topic="t", key="k", payload={}, created_at=datetime.now(timezone.utc))
        for i in range(3))
    during_marks: list[str] = []

    def observe(execute, sql, params, many, context):  # noqa: ANN001 - Django's execute_wrapper signature
        if sql.startswith("UPDATE"):
            context["cursor"].execute("SHOW synchronous_commit")
            during_marks.append(context["cursor"].fetchone()[0])
        return execute(sql, params, many, context)

    with connections[ALIAS].execute_wrapper(observe):
        relay._record(ALIAS, "payment", [{"id": r.pk, "topic": "t"} for r in rows],
                      relay._Outcome(acked=[r.pk for r in rows]))
    assert during_marks == ["off"]
    assert _synchronous_commit() == "on"  # over with the relay's transaction: the session is as it was
    assert OutboxMessage.objects.using(ALIAS).filter(dispatched=True).count() == 3


def test_inside_a_transaction_it_did_not_open_nothing_is_relaxed():
    with transaction.atomic(using=ALIAS), relaxed(ALIAS):
        assert _synchronous_commit() == "on"
    with relaxed(ALIAS):
        assert _synchronous_commit() == "off"
    assert _synchronous_commit() == "on"
