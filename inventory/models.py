from __future__ import annotations

from django.db import models

from shopsite.events.models import service_proxies


class Stock(models.Model):
    """Units of one SKU: available to reserve, and reserved by orders.

    available + reserved only changes by restocking; reserve and release
    move units between the two.
    """

    sku = models.CharField(primary_key=True, max_length=64, db_column="_id")
    available = models.IntegerField()
    reserved = models.IntegerField(default=0)
    updated_at = models.DateTimeField(db_column="updatedAt")

    class Meta:
        db_table = "stock"
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku}: {self.available} available, {self.reserved} reserved"


class Reservation(models.Model):
    """What the inventory service did for one order."""

    RESERVED = "RESERVED"
    FAILED = "FAILED"
    RELEASED = "RELEASED"
    SHIPPED = "SHIPPED"  # the reserved units left with the parcel: nothing to release any more
    # Payment authorised: the units are promised to shipping, which may be shipping them now.
    # Released, like RESERVED, only once shipping has cancelled the order.
    ALLOCATED = "ALLOCATED"

    order_id = models.CharField(primary_key=True, max_length=64, db_column="_id")
    correlation_id = models.CharField(max_length=64, db_column="correlationId")
    items = models.JSONField()  # [{sku, qty}] as ordered, merged per SKU
    status = models.CharField(max_length=16, choices=[(s, s) for s in (RESERVED, FAILED, RELEASED, SHIPPED, ALLOCATED)])
    reason = models.CharField(max_length=500, blank=True, default="")
    # Shipping said it will never ship this order (ShipmentCancelled): the one fact that
    # makes a release safe (docs/architecture.md section 10, rule 6).
    shipping_cancelled = models.BooleanField(default=False, db_column="shippingCancelled")
    # eventId of an operator's releaseInventory that waits for shipping's answer
    # (ShipmentCancelled: release; OrderShipped: refuse); empty when none waits.
    release_requested_by = models.CharField(max_length=64, blank=True, default="", db_column="releaseRequestedBy")
    created_at = models.DateTimeField(db_column="createdAt")
    updated_at = models.DateTimeField(db_column="updatedAt")

    class Meta:
        db_table = "reservations"

    def __str__(self) -> str:
        return f"{self.order_id} {self.status}"


# This service's outbox and processed_events, as the admin shows them.
Outbox, ProcessedEventRecord = service_proxies("inventory")
