from __future__ import annotations

from typing import Any

from django.db import models

from shopsite.events.models import service_proxies


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
            "timeline": [public_entry(e) for e in self.timeline],
            "updatedAt": self.updated_at.isoformat(),
            "correlationId": self.correlation_id,
            "items": self.items,
            "total": float(self.total) if self.total is not None else None,
        }


def public_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry as the API shows it (seed: {type, at, details}) plus its ids."""
    return {"type": entry["type"], "at": entry["at"], "details": entry.get("details", {}),
            "eventId": entry["eventId"], "causationId": entry.get("causationId"), "seq": entry.get("seq")}


class DeadLetter(models.Model):
    """A message some consumer could not handle: one row per original message.

    Projected from ops.DeadLetter.v1 events; every consumer that gave up on
    the same message adds its error to `errors`.
    """

    PENDING = "PENDING"
    REPLAYED = "REPLAYED"

    id = models.CharField(primary_key=True, max_length=300, db_column="_id")  # topic:partition:offset
    original_type = models.CharField(max_length=200, db_column="originalType")
    original_event_id = models.CharField(max_length=100, db_column="originalEventId")
    order_id = models.CharField(max_length=200, blank=True, default="", db_column="orderId")
    error = models.TextField()
    errors = models.JSONField(default=list)  # [{consumer, error, at, deadLetterEventId}]
    payload = models.JSONField(null=True)  # the original message: envelope object, or its text
    source_topic = models.CharField(max_length=200, db_column="sourceTopic")
    partition = models.IntegerField(null=True)
    offset = models.BigIntegerField(null=True)
    headers = models.JSONField(default=dict)
    correlation_id = models.CharField(max_length=64, blank=True, default="", db_column="correlationId")
    created_at = models.DateTimeField(db_column="createdAt")
    status = models.CharField(max_length=16, default=PENDING, choices=[(PENDING, PENDING), (REPLAYED, REPLAYED)])
    replay_count = models.IntegerField(default=0, db_column="replayCount")
    replayed_at = models.DateTimeField(null=True, blank=True, db_column="replayedAt")

    class Meta:
        db_table = "dead_letters"
        indexes = [models.Index(fields=["-created_at"], name="dead_letters_newest_idx")]

    def __str__(self) -> str:
        return f"{self.original_type} {self.id}"

    def as_document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "originalType": self.original_type,
            "originalEventId": self.original_event_id,
            "orderId": self.order_id or None,
            "error": self.error,
            "errors": self.errors,
            "payload": self.payload,
            "sourceTopic": self.source_topic,
            "partition": self.partition,
            "offset": self.offset,
            "headers": self.headers,
            "correlationId": self.correlation_id,
            "createdAt": self.created_at.isoformat(),
            "status": self.status,
            "replayCount": self.replay_count,
            "replayedAt": self.replayed_at.isoformat() if self.replayed_at else None,
        }


# This service's outbox and processed_events, as the admin shows them.
Outbox, ProcessedEventRecord = service_proxies("readmodel")
