from __future__ import annotations

from django.db import models

from shopsite.events.models import service_proxies
from shopsite.simulation import SimulatorSettings


class Payment(models.Model):
    """The payment service's view of one order.

    The total arrives with OrderCreated and the go-ahead with
    InventoryReserved; they travel on different topics and may arrive in
    either order, so both are recorded and authorisation happens when the
    second one lands.
    """

    AWAITING_TOTAL = "AWAITING_TOTAL"  # inventory reserved, OrderCreated not seen yet
    AWAITING_INVENTORY = "AWAITING_INVENTORY"
    AUTHORIZED = "AUTHORIZED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"
    STATUSES = (AWAITING_TOTAL, AWAITING_INVENTORY, AUTHORIZED, FAILED, REFUNDED)

    order_id = models.CharField(primary_key=True, max_length=64, db_column="_id")
    correlation_id = models.CharField(max_length=64, db_column="correlationId")
    total = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    status = models.CharField(max_length=24, choices=[(s, s) for s in STATUSES])
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)  # authorised
    auth_id = models.CharField(max_length=64, blank=True, default="", db_column="authId")
    reason = models.CharField(max_length=500, blank=True, default="")
    # The InventoryReserved event that asked for this authorisation (its causationId).
    requested_by = models.CharField(max_length=64, blank=True, default="", db_column="requestedBy")
    authorized_at = models.DateTimeField(null=True, blank=True, db_column="authorizedAt")
    refund_id = models.CharField(max_length=64, blank=True, default="", db_column="refundId")
    refunded_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True,
                                          db_column="refundedAmount")
    refunded_at = models.DateTimeField(null=True, blank=True, db_column="refundedAt")
    # Stock released by a compensation: authorising now would charge for goods nobody holds.
    inventory_released = models.BooleanField(default=False, db_column="inventoryReleased")
    created_at = models.DateTimeField(db_column="createdAt")
    updated_at = models.DateTimeField(db_column="updatedAt")

    class Meta:
        db_table = "payments"

    def __str__(self) -> str:
        return f"{self.order_id} {self.status}"

    def as_document(self) -> dict:
        return {
            "orderId": self.order_id,
            "status": self.status,
            "total": float(self.total) if self.total is not None else None,
            "amount": float(self.amount) if self.amount is not None else None,
            "authId": self.auth_id or None,
            "reason": self.reason or None,
            "authorizedAt": self.authorized_at.isoformat() if self.authorized_at else None,
            "refundId": self.refund_id or None,
            "refundedAmount": float(self.refunded_amount) if self.refunded_amount is not None else None,
            "refundedAt": self.refunded_at.isoformat() if self.refunded_at else None,
            "correlationId": self.correlation_id,
        }


class PaymentSimulator(SimulatorSettings):
    """How the simulated payment processor behaves."""

    decline_above = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True,
                                        db_column="declineAbove")

    class Meta:
        db_table = "payment_simulator"
        verbose_name = "payment simulator"

    def __str__(self) -> str:
        return f"declineAbove={self.decline_above} failureRate={self.failure_rate}"

    def as_document(self) -> dict:
        return {"declineAbove": float(self.decline_above) if self.decline_above is not None else None,
                "failureRate": self.failure_rate}


# This service's outbox and processed_events, as the admin shows them.
Outbox, ProcessedEventRecord = service_proxies("payment")
