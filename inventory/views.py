from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods

from inventory import application as app
from inventory.application import SetStock
from inventory.models import Stock
from shopsite.http import BadRequest, json_error, parse_body
from shopsite.ops.auth import ops_endpoint


def _stock_document(row: Stock) -> dict:
    return {"sku": row.sku, "available": row.available, "reserved": row.reserved,
            "updatedAt": row.updated_at.isoformat()}


@ops_endpoint
@require_GET
def stock_list(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"results": [_stock_document(s) for s in app.all_stock()]})


@ops_endpoint
@require_http_methods(["PUT"])
def stock_detail(request: HttpRequest, sku: str) -> JsonResponse:
    """Set the available units of a SKU (restock); reserved units are untouched."""
    try:
        body: SetStock = parse_body(request, SetStock)
    except BadRequest as exc:
        return exc.response()
    return JsonResponse(_stock_document(app.set_stock(sku, body)))


@ops_endpoint
@require_GET
def reservation_detail(request: HttpRequest, order_id: str) -> JsonResponse:
    row = app.find_reservation(order_id)
    if row is None:
        return json_error(404, f"no reservation for order {order_id}")
    return JsonResponse({"orderId": row.order_id, "status": row.status, "items": row.items,
                         "reason": row.reason or None, "updatedAt": row.updated_at.isoformat()})
