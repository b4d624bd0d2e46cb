from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from readmodel.models import OrderProjection
from readmodel.pagination import after_cursor, encode_cursor
from shopsite.events import lifecycle
from shopsite.http import json_error

ALIAS = "read_model_service"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@require_GET
def order_list(request: HttpRequest) -> JsonResponse:
    status = request.GET.get("status") or None
    if status is not None and status not in lifecycle.STATUSES:
        return json_error(400, "invalid status", [{"field": "status", "message": f"one of {list(lifecycle.STATUSES)}"}])
    try:
        limit = int(request.GET.get("limit", DEFAULT_LIMIT))
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError
    except ValueError:
        return json_error(400, "invalid limit", [{"field": "limit", "message": f"an integer from 1 to {MAX_LIMIT}"}])
    rows = OrderProjection.objects.using(ALIAS).all()
    if status:
        rows = rows.filter(current_status=status)
    try:
        page = list(after_cursor(rows, request.GET.get("cursor"))[: limit + 1])
    except ValueError as exc:
        return json_error(400, "invalid cursor", [{"field": "cursor", "message": str(exc)}])
    more = len(page) > limit
    page = page[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].order_id) if more else None
    return JsonResponse({"results": [p.as_document() for p in page], "next": next_cursor})


@require_GET
def order_detail(request: HttpRequest, order_id: str) -> JsonResponse:
    row = OrderProjection.objects.using(ALIAS).filter(pk=order_id).first()
    if row is None:
        return json_error(404, f"order {order_id} not in the read model (yet)")
    return JsonResponse(row.as_document())
