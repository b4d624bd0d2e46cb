from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods
from pydantic import BaseModel, ConfigDict, Field

from shipping.models import Shipment, ShippingSimulator
from shopsite.simulation import settings_endpoint
from shopsite.http import json_error
from shopsite.ops.auth import ops_endpoint
from shopsite.services import BY_NAME

ALIAS = BY_NAME["shipping"].alias


@ops_endpoint
@require_GET
def shipment_detail(request: HttpRequest, order_id: str) -> JsonResponse:
    row = Shipment.objects.using(ALIAS).filter(pk=order_id).first()
    if row is None:
        return json_error(404, f"no shipment for order {order_id}")
    return JsonResponse(row.as_document())


class SimulatorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outage: bool = False
    failureRate: float = Field(default=0.0, ge=0.0, le=1.0)


@ops_endpoint
@require_http_methods(["GET", "PUT"])
def simulator(request: HttpRequest) -> JsonResponse:
    return settings_endpoint(request, ShippingSimulator, ALIAS, SimulatorBody,
                             lambda b: {"outage": b.outage, "failure_rate": b.failureRate})
