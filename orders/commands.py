"""Placing orders: the one command the order service accepts over HTTP.

Every way in shares one transaction body (`_in_one_transaction`): a single
request (place_order), the concurrent requests a web process groups
(place_orders_together, see orders/writer.py) and bulk placing
(place_orders, for load generation).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from django.db import IntegrityError

from orders import lifecycle
from orders.models import IdempotencyKey, Order
from shopsite.events import topics
from shopsite.events.schemas import OrderCreated
from shopsite.events.unit_of_work import UnitOfWork, unit_of_work
from shopsite.services import BY_NAME
from shopsite.transient_errors import is_transient

ALIAS = BY_NAME["orders"].alias


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different body."""


@dataclass(frozen=True)
class Placed:
    order: Order
    created: bool  # False when an Idempotency-Key replay returned the earlier order


@dataclass(frozen=True)
class Placement:
    """One request to place an order, validated, its order id drawn (used only if the order is created)."""

    request: OrderCreated
    idempotency_key: str | None
    digest: str  # of the body, to tell a replay of the key from a conflict ("" without a key)


# What placing one order answers: its Placed, or the exception placing it alone would raise.
Outcome = Placed | Exception


def placement(items: Sequence[Any], total: object, idempotency_key: str | None = None) -> Placement:
    """Validate an order request, its items dicts or LineItems (raises pydantic's ValidationError)."""
    request = OrderCreated.model_validate({"orderId": str(uuid.uuid4()), "items": items, "total": total})
    key = idempotency_key or None
    return Placement(request, key, _request_hash(request) if key else "")


def _request_hash(request: OrderCreated) -> str:
    body = request.model_dump(mode="json", exclude={"orderId"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def place_order(items: list[dict], total: object, idempotency_key: str | None = None) -> Placed:
    """Create the order and its OrderCreated event in one transaction."""
    return place(placement(items, total, idempotency_key))


def place(one: Placement) -> Placed:
    """Place one validated order in a transaction of its own; raises IdempotencyConflict."""
    return answer(_place_alone(one))


def answer(outcome: Outcome) -> Placed:
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def place_orders_together(placements: Sequence[Placement]) -> list[Outcome]:
    """Place several requests' orders in one transaction; each gets the answer it would get alone.

    Answers come in the order of `placements`; the same Idempotency-Key twice
    is a replay (or a conflict) of the first, as if they had come one after
    the other. When the shared transaction fails, every placement is tried
    in a transaction of its own, so a bad one (a key another process claimed
    at the same moment, a row the database refuses) fails by itself and the
    others are placed exactly once. A transient error (a lock wait that ran
    out, a lost connection) is no placement's fault: it is everyone's
    answer, rather than making each wait for it again.
    """
    if len(placements) == 1:
        return [_place_alone(placements[0])]
    try:
        return _in_one_transaction(placements)
    except Exception as exc:
        if is_transient(exc):
            return [exc] * len(placements)
        return [_place_alone(p) for p in placements]


def _place_alone(one: Placement) -> Outcome:
    try:
        try:
            return _in_one_transaction([one])[0]
        except IntegrityError:
            # A concurrent request with the same key won the race: answer with its order.
            key = one.idempotency_key
            if key and IdempotencyKey.objects.using(ALIAS).filter(key=key).exists():
                return _in_one_transaction([one])[0]
            raise
    except Exception as exc:
        return exc


def _in_one_transaction(placements: Sequence[Placement]) -> list[Placed | IdempotencyConflict]:
    with unit_of_work(ALIAS) as uow:
        # key -> (digest of the body that claimed it, its order): claimed before, or earlier in this group.
        claimed = _claimed_keys([p.idempotency_key for p in placements if p.idempotency_key])
        now = datetime.now(timezone.utc)
        outcomes: list[Placed | IdempotencyConflict] = []
        orders: list[Order] = []
        keys: list[IdempotencyKey] = []
        for one in placements:
            key = one.idempotency_key
            if key and key in claimed:
                digest, earlier = claimed[key]
                outcomes.append(Placed(earlier, created=False) if digest == one.digest else IdempotencyConflict(key))
                continue
            order = _new_order(uow, one.request, now)
            orders.append(order)
            if key:
                keys.append(IdempotencyKey(key=key, request_hash=one.digest, order_id=order.order_id, created_at=now))
                claimed[key] = (one.digest, order)
            outcomes.append(Placed(order, created=True))
        uow.insert_rows(orders)
        uow.insert_rows(keys)  # a key claimed meanwhile by another process fails the transaction here
    return outcomes


def _claimed_keys(keys: list[str]) -> dict[str, tuple[str, Order]]:
    if not keys:
        return {}
    rows = list(IdempotencyKey.objects.using(ALIAS).filter(key__in=keys))
    if not rows:
        return {}
    orders = Order.objects.using(ALIAS).in_bulk([row.order_id for row in rows])
    return {row.key: (row.request_hash, orders[row.order_id]) for row in rows}


def _new_order(uow: UnitOfWork, request: OrderCreated, now: datetime) -> Order:
    event = uow.emit_new(topics.ORDER_CREATED, request, correlation_id=str(uuid.uuid4()), at=now)
    return Order(
        order_id=request.orderId,
        items=[i.model_dump() for i in request.items],
        total=request.total,
        status=lifecycle.CREATED,
        history=[lifecycle.entry_for(event)],
        created_at=now,
        updated_at=now,
        correlation_id=event.correlation_id,
    )


def place_orders(requests: list[tuple[list[dict], object]]) -> list[Order]:
    """Create many orders and their OrderCreated events in one transaction (load generation, imports).

    No Idempotency-Key (a bulk caller has its own ids); a bad request fails them all.
    """
    placed = _in_one_transaction([placement(items, total) for items, total in requests])
    return [answer(outcome).order for outcome in placed]
