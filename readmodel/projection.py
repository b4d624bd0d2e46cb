"""Projecting events into orders_projection.

The timeline is kept in causal order and currentStatus is folded from it, so
the projection is the same whatever order the topics deliver events in, and
rebuilding it by replaying every topic gives the same rows.
"""

from __future__ import annotations

from datetime import datetime, timezone

from readmodel.models import OrderProjection
from shopsite.events import lifecycle, topics
from shopsite.events.envelope import Event


def project(event: Event, alias: str) -> OrderProjection | None:
    """Apply one event inside the caller's unit of work; returns the projection when it changed."""
    # Locked for the same reason as the order's history: one order's events come from
    # several topics, i.e. possibly from consumers in several processes at once.
    # (A row that does not exist yet is guarded by the primary key: a second insert fails.)
    row = OrderProjection.objects.using(alias).select_for_update().filter(pk=event.order_id).first()
    now = datetime.now(timezone.utc)
    if row is None:
        row = OrderProjection(order_id=event.order_id, created_at=event.timestamp, current_status=lifecycle.CREATED,
                              timeline=[], updated_at=now)
        is_new = True
    else:
        is_new = False
    # seq numbers entries in arrival order: live streams resume from it (Last-Event-ID),
    # while the timeline itself stays in causal order.
    entry = {**lifecycle.entry_for(event), "seq": max((e.get("seq", 0) for e in row.timeline), default=0) + 1}
    timeline, added = lifecycle.insert_entry(row.timeline, entry)
    if not added:
        return None
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
    row.save(using=alias, force_insert=is_new)
    return row
