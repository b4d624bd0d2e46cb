"""Server-rendered dashboard pages over the read model."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from readmodel.models import OrderProjection
from readmodel.pagination import after_cursor, encode_cursor
from shopsite.events import lifecycle

ALIAS = "read_model_service"
PAGE_SIZE = 50


@require_GET
def order_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or ""
    rows = OrderProjection.objects.using(ALIAS).all()
    if status in lifecycle.STATUSES:
        rows = rows.filter(current_status=status)
    try:
        page = list(after_cursor(rows, request.GET.get("cursor"))[: PAGE_SIZE + 1])
    except ValueError:
        page = list(after_cursor(rows, None)[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    return render(request, "dashboard/order_list.html", {
        "orders": page,
        "statuses": lifecycle.STATUSES,
        "status": status,
        "next_cursor": encode_cursor(page[-1].created_at, page[-1].order_id) if more else None,
    })


@require_GET
def order_page(request: HttpRequest, order_id: str) -> HttpResponse:
    row = OrderProjection.objects.using(ALIAS).filter(pk=order_id).first()
    if row is None:
        raise Http404("order not in the read model")
    return render(request, "dashboard/order_detail.html", {"order": row.as_document()})
