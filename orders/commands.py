"""Placing an order: the one command the order service accepts over HTTP."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from django.db import IntegrityError

from orders import lifecycle
from orders.models import IdempotencyKey, Order
from shopsite.events import topics
from shopsite.events.schemas import OrderCreated
from shopsite.events.unit_of_work import unit_of_work
from shopsite.services import BY_NAME

ALIAS = BY_NAME["orders"].alias


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different body."""


@dataclass(frozen=True)
class Placed:
    order: Order
    created: bool  # False when an Idempotency-Key replay returned the earlier order


def _request_hash(request: OrderCreated) -> str:
    body = request.model_dump(mode="json", exclude={"orderId"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def place_order(items: list[dict], total: object, idempotency_key: str | None = None) -> Placed:
    """Create the order and its OrderCreated event in one transaction."""
    order_id = str(uuid.uuid4())
    request = OrderCreated.model_validate({"orderId": order_id, "items": items, "total": total})
    digest = _request_hash(request)
    try:
        with unit_of_work(ALIAS) as uow:
            if idempotency_key:
                earlier = IdempotencyKey.objects.using(ALIAS).filter(key=idempotency_key).first()
                if earlier is not None:
                    if earlier.request_hash != digest:
                        raise IdempotencyConflict(idempotency_key)
                    return Placed(Order.objects.using(ALIAS).get(pk=earlier.order_id), created=False)
            now = datetime.now(timezone.utc)
            event = uow.emit_new(topics.ORDER_CREATED, request, correlation_id=str(uuid.uuid4()), at=now)
            order = Order(
                order_id=order_id,
                items=[i.model_dump() for i in request.items],
                total=request.total,
                status=lifecycle.CREATED,
                history=[lifecycle.entry_for(event)],
                created_at=now,
                updated_at=now,
                correlation_id=event.correlation_id,
            )
            order.save(using=ALIAS, force_insert=True)
            if idempotency_key:
                IdempotencyKey(key=idempotency_key, request_hash=digest, order_id=order_id,
                               created_at=now).save(using=ALIAS, force_insert=True)
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its order.
        if idempotency_key and IdempotencyKey.objects.using(ALIAS).filter(key=idempotency_key).exists():
            return place_order(items, total, idempotency_key)
        raise
    return Placed(order, created=True)


def place_orders(requests: list[tuple[list[dict], object]]) -> list[Order]:
    """Create many orders and their OrderCreated events in one transaction (load generation, imports).

    The same validation, event and document as place_order, written with
    bulk inserts; no Idempotency-Key (a bulk caller has its own ids).
    """
    now = datetime.now(timezone.utc)
    orders: list[Order] = []
    with unit_of_work(ALIAS) as uow:
        for items, total in requests:
            order_id = str(uuid.uuid4())
            request = OrderCreated.model_validate({"orderId": order_id, "items": items, "total": total})
            event = uow.emit_new(topics.ORDER_CREATED, request, correlation_id=str(uuid.uuid4()), at=now)
            orders.append(Order(order_id=order_id, items=[i.model_dump() for i in request.items],
                                total=request.total, status=lifecycle.CREATED, history=[lifecycle.entry_for(event)],
                                created_at=now, updated_at=now, correlation_id=event.correlation_id))
        uow.insert_rows(orders)
    return orders
