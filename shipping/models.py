from __future__ import annotations

from django.db import models

from shopsite.events.models import service_proxies
from shopsite.simulation import SimulatorSettings


class Shipment(models.Model):
    """The shipping service's record for one order: shipped (carrier, tracking id) or failed."""

    SHIPPED = "SHIPPED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # payment refunded before anything shipped

    order_id = models.CharField(primary_key=True, max_length=64, db_column="_id")
    correlation_id = models.CharField(max_length=64, db_column="correlationId")
    status = models.CharField(max_length=16, choices=[(SHIPPED, SHIPPED), (FAILED, FAILED), (CANCELLED, CANCELLED)])
    carrier = models.CharField(max_length=64, blank=True, default="")
    tracking_id = models.CharField(max_length=64, blank=True, default="", db_column="trackingId")
    reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(db_column="createdAt")
    updated_at = models.DateTimeField(db_column="updatedAt")

    class Meta:
        db_table = "shipments"

    def __str__(self) -> str:
        return f"{self.order_id} {self.status}"

    def as_document(self) -> dict:
        return {
            "orderId": self.order_id,
            "status": self.status,
            "carrier": self.carrier or None,
            "trackingId": self.tracking_id or None,
            "reason": self.reason or None,
            "correlationId": self.correlation_id,
            "updatedAt": self.updated_at.isoformat(),
        }


class ShippingSimulator(SimulatorSettings):
    """How the simulated carrier behaves."""

    outage = models.BooleanField(default=False)

    class Meta:
        db_table = "shipping_simulator"
        verbose_name = "shipping simulator"

    def __str__(self) -> str:
        return f"outage={self.outage} failureRate={self.failure_rate}"

    def as_document(self) -> dict:
        return {"outage": self.outage, "failureRate": self.failure_rate}


# This service's outbox and processed_events, as the admin shows them.
Outbox, ProcessedEventRecord = service_proxies("shipping")
