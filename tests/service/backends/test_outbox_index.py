"""The relay's look for pending outbox rows stays cheap however many rows were sent (PostgreSQL).

Rows are kept for OUTBOX_RETENTION_HOURS after they were sent, and every
relay round asks for the pending ones. On PostgreSQL an index on
(dispatched, id) still holds an entry for every row that was ever pending
until vacuum removes it, and the planner scanned the whole table instead.
A partial index holds the pending rows only.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shopsite.events import relay
from shopsite.events.models import OutboxMessage

pytestmark = [pytest.mark.backends("postgres"), pytest.mark.django_db]

ALIAS = "order_service"


def test_pending_rows_are_found_through_the_partial_index_not_a_scan_of_the_sent_ones():
    now = datetime.now(timezone.utc)
    OutboxMessage.objects.using(ALIAS).bulk_create(
        OutboxMessage(event_id=f"e{i}", type="t", topic="t", key="k", payload={}, created_at=now,
                      dispatched=i >= 3, dispatched_at=now if i >= 3 else None) for i in range(5000))
    plan = relay.pending(ALIAS).order_by("id").values("id", "topic", "key", "payload")[:1000].explain()
    assert "outbox_pending_rows" in plan and "Seq Scan" not in plan, plan
