"""The two collections every service database has (seed: shared collections).

Migrated into every service alias by the router; always use `.using(alias)`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.module_loading import import_string


class ProcessedEvent(models.Model):
    """One row per (consumer, eventId) handled: the inbox that makes consumers idempotent.

    Written in the same transaction as the handler's effects, so "handled"
    and "effects applied" can never disagree.
    """

    id = models.CharField(primary_key=True, max_length=200, db_column="_id")  # "consumer:eventId"
    consumer = models.CharField(max_length=100)
    event_id = models.CharField(max_length=100, db_column="eventId")
    at = models.DateTimeField()

    class Meta:
        db_table = "processed_events"
        verbose_name = "processed event"

    def __str__(self) -> str:
        return self.id

    @staticmethod
    def key(consumer: str, event_id: str) -> str:
        return f"{consumer}:{event_id}"


def _outbox_id() -> models.Field:
    """The outbox's `_id`: an ObjectId on MongoDB (seed), a bigint sequence on SQL.

    Both are "the project's auto field" (DEFAULT_AUTO_FIELD, chosen per
    backend in settings.py); each backend has its own migration for it
    (shopsite/events/migrations, shopsite/mongo/migrations/events).
    """
    return import_string(settings.DEFAULT_AUTO_FIELD)(primary_key=True, db_column="_id")


class OutboxMessage(models.Model):
    """An event waiting to be published, written with the state change that caused it.

    `payload` holds the whole validated envelope, so what the relay publishes
    is byte-for-byte what the handler produced.
    """

    id = _outbox_id()
    # Not unique: a dead-letter replay publishes the same event (same eventId) again.
    event_id = models.CharField(max_length=100, db_index=True, db_column="eventId")
    type = models.CharField(max_length=100)
    topic = models.CharField(max_length=200)
    key = models.CharField(max_length=100)
    payload = models.JSONField()
    created_at = models.DateTimeField(db_column="createdAt")
    dispatched = models.BooleanField(default=False)
    dispatched_at = models.DateTimeField(null=True, blank=True, db_column="dispatchedAt")
    attempts = models.IntegerField(default=0)
    last_error = models.TextField(blank=True, default="", db_column="lastError")
    # Set when the broker can never take the row (too large, invalid): the relay
    # leaves it aside, visibly, so the rows after it keep flowing. dispatched stays False.
    parked_at = models.DateTimeField(null=True, blank=True, db_column="parkedAt")

    class Meta:
        db_table = "outbox"
        verbose_name = "outbox message"
        indexes = [models.Index(fields=["dispatched", "id"], name="outbox_pending_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.key} ({self.status})"

    @property
    def status(self) -> str:
        return "sent" if self.dispatched else "parked" if self.parked_at else "pending"


def service_proxies(app_label: str) -> tuple[type[OutboxMessage], type[ProcessedEvent]]:
    """Per-service proxies of the shared tables, for the admin.

    A proxy belongs to the service app, so the router sends its queries to
    that service's database: the admin shows each service's own rows.
    Call from the service app's models.py.
    """

    def meta(verbose: str) -> type:
        return type("Meta", (), {"proxy": True, "app_label": app_label, "verbose_name": verbose})

    outbox = type("Outbox", (OutboxMessage,), {"__module__": f"{app_label}.models", "Meta": meta("outbox message")})
    processed = type("ProcessedEventRecord", (ProcessedEvent,),
                     {"__module__": f"{app_label}.models", "Meta": meta("processed event")})
    return outbox, processed  # type: ignore[return-value]
