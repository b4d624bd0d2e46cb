from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods
from pydantic import BaseModel, ConfigDict, Field

from inventory import stock
from inventory.models import Reservation, Stock
from shopsite.http import BadRequest, json_error, parse_body
from shopsite.ops.auth import ops_endpoint
from shopsite.services import BY_NAME

ALIAS = BY_NAME["inventory"].alias


class SetStock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    available: int = Field(ge=0, le=1_000_000_000)


def _stock_document(row: Stock) -> dict:
    return {"sku": row.sku, "available": row.available, "reserved": row.reserved,
            "updatedAt": row.updated_at.isoformat()}


@ops_endpoint
@require_GET
def stock_list(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"results": [_stock_document(s) for s in stock.all_stock()]})


@ops_endpoint
@require_http_methods(["PUT"])
def stock_detail(request: HttpRequest, sku: str) -> JsonResponse:
    """Set the available units of a SKU (restock); reserved units are untouched."""
    try:
        body: SetStock = parse_body(request, SetStock)
    except BadRequest as exc:
        return exc.response()
    return JsonResponse(_stock_document(stock.set_available(sku, body.available)))


@ops_endpoint
@require_GET
def reservation_detail(request: HttpRequest, order_id: str) -> JsonResponse:
    row = Reservation.objects.using(ALIAS).filter(pk=order_id).first()
    if row is None:
        return json_error(404, f"no reservation for order {order_id}")
    return JsonResponse({"orderId": row.order_id, "status": row.status, "items": row.items,
                         "reason": row.reason or None, "updatedAt": row.updated_at.isoformat()})
