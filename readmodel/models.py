from __future__ import annotations

from typing import Any

from django.db import models


class OrderProjection(models.Model):
    """Query-side view of one order (seed: read_model_service.orders_projection).

    Seed fields plus correlationId, items and total from OrderCreated so the
    dashboard list needs no second lookup.
    """

    order_id = models.CharField(primary_key=True, max_length=64, db_column="_id")
    created_at = models.DateTimeField(db_column="createdAt")
    current_status = models.CharField(max_length=32, db_column="currentStatus")
    timeline = models.JSONField(default=list)
    updated_at = models.DateTimeField(db_column="updatedAt")
    correlation_id = models.CharField(max_length=64, blank=True, default="", db_column="correlationId")
    items = models.JSONField(default=list)
    total = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)

    class Meta:
        db_table = "orders_projection"
        indexes = [
            models.Index(fields=["-created_at", "-order_id"], name="projection_newest_idx"),
            models.Index(fields=["current_status", "-created_at", "-order_id"], name="projection_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.current_status}"

    def as_document(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "createdAt": self.created_at.isoformat(),
            "currentStatus": self.current_status,
            "timeline": [
                {"type": e["type"], "at": e["at"], "details": e.get("details", {}), "eventId": e["eventId"]}
                for e in self.timeline
            ],
            "updatedAt": self.updated_at.isoformat(),
            "correlationId": self.correlation_id,
            "items": self.items,
            "total": float(self.total) if self.total is not None else None,
        }
