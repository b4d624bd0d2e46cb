"""The payment service's application layer: what its JSON views, the dashboard and the admin call.

The payment simulator's settings (the body both the API and the dashboard's
form validate with) and the queries operators make, over the payment
service's own models (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from payment.models import Payment, PaymentSimulator
from shopsite.events.schemas import Money
from shopsite.services import BY_NAME

ALIAS = BY_NAME["payment"].alias


class SimulatorBody(BaseModel):
    """The body of PUT /api/ops/payment/simulator, and of the dashboard's payment form."""

    model_config = ConfigDict(extra="forbid")
    declineAbove: Money | None = None
    failureRate: float = Field(default=0.0, ge=0.0, le=1.0)


def simulator() -> PaymentSimulator:
    return PaymentSimulator.current(ALIAS)


def configure_simulator(body: SimulatorBody) -> PaymentSimulator:
    return PaymentSimulator.configure(ALIAS, decline_above=body.declineAbove, failure_rate=body.failureRate)


def find_payment(order_id: str) -> Payment | None:
    return Payment.objects.using(ALIAS).filter(pk=order_id).first()
