from __future__ import annotations

from typing import Any

from django.db import models

from orders import lifecycle
from shopsite.events.models import service_proxies


class Order(models.Model):
    """The command-side order (seed: order_service.orders). `history` is its event log."""

    order_id = models.CharField(primary_key=True, max_length=64, db_column="_id")
    items = models.JSONField()
    total = models.DecimalField(max_digits=14, decimal_places=2)
    status = models.CharField(max_length=32, choices=[(s, s) for s in lifecycle.STATUSES], db_index=True)
    history = models.JSONField(default=list)
    created_at = models.DateTimeField(db_column="createdAt")
    updated_at = models.DateTimeField(db_column="updatedAt")
    correlation_id = models.CharField(max_length=64, db_column="correlationId")

    class Meta:
        db_table = "orders"

    def __str__(self) -> str:
        return f"{self.order_id} {self.status}"

    def as_document(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "items": self.items,
            "total": float(self.total),
            "status": self.status,
            "history": [public_entry(e) for e in self.history],
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
            "correlationId": self.correlation_id,
        }


def public_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """History entry as the seed shows it ({type, at, details}) plus its eventId."""
    return {"type": entry["type"], "at": entry["at"], "details": entry.get("details"), "eventId": entry["eventId"],
            "causationId": entry.get("causationId")}


class IdempotencyKey(models.Model):
    """Idempotency-Key of a POST /api/orders: same key and body -> the same order."""

    key = models.CharField(primary_key=True, max_length=200, db_column="_id")
    request_hash = models.CharField(max_length=64, db_column="requestHash")
    order_id = models.CharField(max_length=64, db_column="orderId")
    created_at = models.DateTimeField(db_column="createdAt")

    class Meta:
        db_table = "idempotency_keys"


# This service's outbox and processed_events, as the admin shows them.
Outbox, ProcessedEventRecord = service_proxies("orders")
