"""The order lifecycle: statuses, the state machine, and causal ordering.

The order service's published contract: the read model imports this module
(and only this one) from orders, the one exception .importlinter allows.

Shared by the order service (order.status, history) and the read model
(currentStatus, timeline) so both derive the same answer from the same set
of events. Events of one order travel on different topics and can arrive
out of causal order, so status is never "the last event that arrived": it
is the state machine folded over the events sorted causally
(docs/architecture.md section 10, rules 1-3).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shopsite.events import topics

CREATED = "CREATED"
INVENTORY_RESERVED = "INVENTORY_RESERVED"
INVENTORY_FAILED = "INVENTORY_FAILED"
PAYMENT_AUTHORIZED = "PAYMENT_AUTHORIZED"
PAYMENT_FAILED = "PAYMENT_FAILED"
SHIPPED = "SHIPPED"
SHIPPING_FAILED = "SHIPPING_FAILED"
REFUNDED = "REFUNDED"

STATUSES: tuple[str, ...] = (
    CREATED, INVENTORY_RESERVED, INVENTORY_FAILED, PAYMENT_AUTHORIZED,
    PAYMENT_FAILED, SHIPPED, SHIPPING_FAILED, REFUNDED,
)
FAILED_STATUSES = frozenset({INVENTORY_FAILED, PAYMENT_FAILED, SHIPPING_FAILED})
TERMINAL_STATUSES = frozenset({SHIPPED, REFUNDED}) | FAILED_STATUSES

# event type -> (statuses it may be applied in, status it leads to).
# A failed step may be followed by its own success (an operator retry).
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    topics.ORDER_CREATED: (frozenset({CREATED}), CREATED),
    topics.INVENTORY_RESERVED: (frozenset({CREATED, INVENTORY_FAILED}), INVENTORY_RESERVED),
    topics.INVENTORY_FAILED: (frozenset({CREATED, INVENTORY_FAILED}), INVENTORY_FAILED),
    topics.PAYMENT_AUTHORIZED: (frozenset({INVENTORY_RESERVED, PAYMENT_FAILED}), PAYMENT_AUTHORIZED),
    topics.PAYMENT_FAILED: (frozenset({INVENTORY_RESERVED, PAYMENT_FAILED}), PAYMENT_FAILED),
    topics.ORDER_SHIPPED: (frozenset({PAYMENT_AUTHORIZED, SHIPPING_FAILED}), SHIPPED),
    topics.SHIPPING_FAILED: (frozenset({PAYMENT_AUTHORIZED, SHIPPING_FAILED}), SHIPPING_FAILED),
    topics.PAYMENT_REFUNDED: (frozenset({PAYMENT_AUTHORIZED, SHIPPING_FAILED, SHIPPED}), REFUNDED),
}


def changes_status(event_type: str) -> bool:
    """Operator requests and dead letters are recorded but never move the status."""
    return event_type in TRANSITIONS


def entry_for(event: Any) -> dict[str, Any]:
    """A history/timeline entry (seed: {type, at, details}) plus the ids that order it causally."""
    from shopsite.events.envelope import format_timestamp

    return {
        "type": event.type,
        "at": format_timestamp(event.timestamp),
        "details": event.payload_json(),
        "eventId": event.event_id,
        "causationId": event.causation_id,
    }


def causal_order(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort entries so every effect follows its cause; event time breaks ties.

    Causation beats timestamps because clocks on different hosts disagree,
    while "B was caused by A" is a fact carried in the envelope.
    """
    unique = {e["eventId"]: e for e in entries}
    children: defaultdict[str, list[str]] = defaultdict(list)
    waiting: dict[str, int] = {eid: 0 for eid in unique}
    for eid, entry in unique.items():
        cause = entry.get("causationId")
        if cause in unique and cause != eid:
            children[cause].append(eid)
            waiting[eid] += 1
    ready = [(unique[eid]["at"], eid) for eid, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    ordered: list[dict[str, Any]] = []
    while ready:
        _, eid = heapq.heappop(ready)
        ordered.append(unique[eid])
        for child in children[eid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (unique[child]["at"], child))
    if len(ordered) < len(unique):  # a causation cycle can only come from corrupt data; keep everything
        placed = {e["eventId"] for e in ordered}
        ordered += sorted((e for e in unique.values() if e["eventId"] not in placed), key=lambda e: e["at"])
    return ordered


@dataclass(frozen=True)
class Folded:
    status: str
    ignored: tuple[str, ...]  # eventIds recorded but not applied by the state machine


def fold(entries: Sequence[dict[str, Any]]) -> Folded:
    """The status after applying causally ordered entries; illegal moves are skipped, not fatal."""
    status = CREATED
    ignored: list[str] = []
    for entry in entries:
        transition = TRANSITIONS.get(entry["type"])
        if transition is None:
            continue
        sources, target = transition
        if status in sources:
            status = target
        else:
            ignored.append(entry["eventId"])
    return Folded(status, tuple(ignored))


def insert_entry(entries: Sequence[dict[str, Any]], entry: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """Add an entry (once per eventId) and return (causally ordered entries, added?)."""
    if any(e["eventId"] == entry["eventId"] for e in entries):
        return list(entries), False
    if _goes_last(entries, entry):  # the usual case: events arrive in the order they happened
        return [*entries, entry], True
    return causal_order([*entries, entry]), True


def _goes_last(entries: Sequence[dict[str, Any]], entry: dict[str, Any]) -> bool:
    """Whether causal_order([*entries, entry]) is entries followed by entry, checked in one pass.

    It is when the entries are sorted by (at, eventId) with every cause
    before its effects (then they are their own causal order: each is the
    smallest of those left, and ready), and the new entry sorts after all of
    them and causes none of them (then nothing waits for it, and it is never
    the smallest while another is ready).
    """
    ids = {e["eventId"] for e in entries}
    if len(ids) != len(entries):
        return False
    placed: set[str] = set()
    previous: tuple[str, str] | None = None
    for e in entries:
        key = (e["at"], e["eventId"])
        cause = e.get("causationId")
        if (previous is not None and key <= previous) or cause == entry["eventId"] or (
                cause in ids and cause not in placed and cause != e["eventId"]):
            return False
        placed.add(e["eventId"])
        previous = key
    return previous is None or (entry["at"], entry["eventId"]) > previous
