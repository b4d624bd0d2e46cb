from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from payment.models import Payment
from shopsite.http import json_error
from shopsite.ops.auth import ops_endpoint

ALIAS = "payment_service"


@ops_endpoint
@require_GET
def payment_detail(request: HttpRequest, order_id: str) -> JsonResponse:
    row = Payment.objects.using(ALIAS).filter(pk=order_id).first()
    if row is None:
        return json_error(404, f"no payment for order {order_id}")
    return JsonResponse(row.as_document())
