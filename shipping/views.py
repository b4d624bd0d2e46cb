from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods

from shipping import application as app
from shipping.application import SimulatorBody
from shopsite.http import json_error, settings_document
from shopsite.ops.auth import ops_endpoint


@ops_endpoint
@require_GET
def shipment_detail(request: HttpRequest, order_id: str) -> JsonResponse:
    row = app.find_shipment(order_id)
    if row is None:
        return json_error(404, f"no shipment for order {order_id}")
    return JsonResponse(row.as_document())


@ops_endpoint
@require_http_methods(["GET", "PUT"])
def simulator(request: HttpRequest) -> JsonResponse:
    """GET shows the simulator's settings; PUT validates and stores new ones."""
    return settings_document(request, app.simulator, app.configure_simulator, SimulatorBody)
