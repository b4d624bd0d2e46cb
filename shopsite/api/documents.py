"""What the JSON endpoints answer, as typed models: the response half of the API schema.

The request half is the body models of the services' application layers
(orders.application.PlaceOrderRequest and friends); these describe the documents the views build (`as_document()`),
and the schema test plus schemathesis hold the two together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orders import lifecycle

Status = Literal[lifecycle.STATUSES]  # type: ignore[valid-type]


class Document(BaseModel):
    model_config = ConfigDict(extra="allow")


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer has this shape; `details` names the fields at fault when there are any."""

    error: str
    details: list[FieldError] | None = None


class Line(BaseModel):
    sku: str
    qty: int


class OrderAccepted(Document):
    orderId: str
    correlationId: str
    status: Literal["CREATED"]


class HistoryEntry(Document):
    type: str
    at: datetime
    details: dict[str, Any] | None
    eventId: str
    causationId: str | None


class OrderDocument(Document):
    orderId: str
    items: list[Line]
    total: float
    status: Status
    history: list[HistoryEntry]
    createdAt: datetime
    updatedAt: datetime
    correlationId: str
    asOf: datetime | None = Field(default=None, description="present when the order was rebuilt with ?at=")


class TimelineEntry(HistoryEntry):
    seq: int | None


class Projection(Document):
    orderId: str
    createdAt: datetime
    currentStatus: Status
    timeline: list[TimelineEntry]
    updatedAt: datetime
    correlationId: str | None
    items: list[Line] | None
    total: float | None


class ProjectionPage(Document):
    results: list[Projection]
    next: str | None = Field(description="cursor of the next page, null on the last one")


class RequestAccepted(Document):
    eventId: str
    type: str
    orderId: str


class StockRow(Document):
    sku: str
    available: int
    reserved: int
    updatedAt: datetime


class StockList(Document):
    results: list[StockRow]


class ReservationDocument(Document):
    orderId: str
    status: str
    items: list[Line]
    reason: str | None
    updatedAt: datetime


class PaymentDocument(Document):
    orderId: str
    status: str
    total: float | None
    amount: float | None
    authId: str | None
    reason: str | None
    authorizedAt: datetime | None
    refundId: str | None
    refundedAmount: float | None
    refundedAt: datetime | None
    correlationId: str


class PaymentSimulatorDocument(Document):
    declineAbove: float | None
    failureRate: float


class ShipmentDocument(Document):
    orderId: str
    status: str
    carrier: str | None
    trackingId: str | None
    reason: str | None
    correlationId: str
    updatedAt: datetime


class ShippingSimulatorDocument(Document):
    outage: bool
    failureRate: float


class DeadLetterDocument(Document):
    id: str
    originalType: str
    originalEventId: str
    orderId: str | None
    error: str
    errors: list[Any]
    payload: Any
    sourceTopic: str
    partition: int | None
    offset: int | None
    headers: dict[str, Any] | None
    correlationId: str | None
    createdAt: datetime
    status: str
    replayCount: int
    replayedAt: datetime | None


class DeadLetterList(Document):
    results: list[DeadLetterDocument]
    total: int


class ReplayAccepted(Document):
    eventId: str
    topic: str
    replayCount: int | str | None


class CheckResult(Document):
    ok: bool


class Live(Document):
    ok: bool


class Health(Document):
    ok: bool
    checks: dict[str, CheckResult]
    failing: list[str] | None = None
