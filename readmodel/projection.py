"""Projecting events into orders_projection.

The timeline is kept in causal order and currentStatus is folded from it, so
the projection is the same whatever order the topics deliver events in, and
rebuilding it by replaying every topic gives the same rows.

Set-based: a batch of events is one load of the projections they touch, the
events applied in memory in the order given, and one bulk write.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from orders import lifecycle
from readmodel.models import OrderProjection
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork

WRITTEN_FIELDS = ["created_at", "current_status", "timeline", "updated_at", "correlation_id", "items", "total"]


def project_all(events: Sequence[Event], uow: UnitOfWork) -> list[OrderProjection]:
    """Apply the events in order inside the caller's unit of work; returns the projections that changed."""
    if not events:
        return []
    # Locked for the same reason as the order's history: one order's events come from
    # several topics, i.e. possibly from consumers in several processes at once.
    # (A row that does not exist yet is guarded by the primary key: a second insert fails.)
    rows = uow.locked(OrderProjection, {e.order_id for e in events})
    existing = set(rows)
    changed: dict[str, OrderProjection] = {}
    now = datetime.now(timezone.utc)
    for event in events:
        row = rows.get(event.order_id)
        if row is None:
            row = rows[event.order_id] = OrderProjection(
                order_id=event.order_id, created_at=event.timestamp, current_status=lifecycle.CREATED,
                timeline=[], updated_at=now)
        if _apply(row, event, now):
            changed[row.order_id] = row
    created = [r for oid, r in changed.items() if oid not in existing]
    updated = [r for oid, r in changed.items() if oid in existing]
    uow.insert_rows(created)
    uow.update_rows(updated, WRITTEN_FIELDS)
    return list(changed.values())


def project(event: Event, uow: UnitOfWork) -> OrderProjection | None:
    """Apply one event; returns the projection when it changed."""
    changed = project_all([event], uow)
    return changed[0] if changed else None


def _apply(row: OrderProjection, event: Event, now: datetime) -> bool:
    """Add the event to the row in memory; False when the timeline already has it."""
    # seq numbers entries in arrival order: live streams resume from it (Last-Event-ID),
    # while the timeline itself stays in causal order.
    entry = {**lifecycle.entry_for(event), "seq": max((e.get("seq", 0) for e in row.timeline), default=0) + 1}
    timeline, added = lifecycle.insert_entry(row.timeline, entry)
    if not added:
        return False
    row.timeline = timeline
    row.current_status = lifecycle.fold(timeline).status
    row.updated_at = now
    if event.type == topics.ORDER_CREATED:
        payload = event.payload
        row.created_at = event.timestamp
        row.correlation_id = event.correlation_id
        row.items = [i.model_dump() for i in payload.items]  # type: ignore[attr-defined]
        row.total = payload.total  # type: ignore[attr-defined]
    elif event.timestamp < row.created_at:
        row.created_at = event.timestamp  # until OrderCreated arrives, the earliest event stands in
    if not row.correlation_id:
        row.correlation_id = event.correlation_id
    return True
