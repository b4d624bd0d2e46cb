"""The shipping service's application layer: what its JSON views, the dashboard and the admin call.

The shipping simulator's settings (the body both the API and the dashboard's
form validate with) and the queries operators make, over the shipping
service's own models (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shipping.models import Shipment, ShippingSimulator
from shopsite.services import BY_NAME

ALIAS = BY_NAME["shipping"].alias


class SimulatorBody(BaseModel):
    """The body of PUT /api/ops/shipping/simulator, and of the dashboard's shipping form."""

    model_config = ConfigDict(extra="forbid")
    outage: bool = False
    failureRate: float = Field(default=0.0, ge=0.0, le=1.0)


def simulator() -> ShippingSimulator:
    return ShippingSimulator.current(ALIAS)


def configure_simulator(body: SimulatorBody) -> ShippingSimulator:
    return ShippingSimulator.configure(ALIAS, outage=body.outage, failure_rate=body.failureRate)


def find_shipment(order_id: str) -> Shipment | None:
    return Shipment.objects.using(ALIAS).filter(pk=order_id).first()
