"""The operations dashboard: server-rendered pages, enhanced with htmx, live over SSE.

Every page works without JavaScript (plain links and forms); htmx adds
partial refreshes and the live stream. Signed-in viewers may look; operators
may act, and every action is a CSRF-protected POST.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from pydantic import ValidationError

from inventory import stock
from orders import commands, operations
from orders.models import Order
from orders.views import PlaceOrderRequest
from payment.models import PaymentSimulator
from readmodel import deadletters
from readmodel.models import DeadLetter, OrderProjection
from readmodel.pagination import page
from shipping.models import ShippingSimulator
from shopsite import json_input
from shopsite.dashboard import charts, overview
from shopsite.dashboard.actions import available_actions
from shopsite.events import lifecycle
from shopsite.events.schemas import error_details
from shopsite.ops.auth import page_permission
from shopsite.ops.permissions import OPERATE, PLACE_ORDERS, VIEW

READ = "read_model_service"
PAGE_SIZE = 50
SKUS = [f"SKU-{n}" for n in range(1, 11)]


def action(permission: str = OPERATE) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """POST only, signed in (else to the login page, then back), with `permission` (else 403)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        return require_POST(page_permission(permission, back_to_referer=True)(view))

    return decorate


staff_action = action(OPERATE)
viewer_page = page_permission(VIEW)


# --- order list -------------------------------------------------------------------

def _order_page(request: HttpRequest) -> dict[str, Any]:
    status = request.GET.get("status", "")
    query = request.GET.get("q", "").strip()
    rows = OrderProjection.objects.using(READ).all()
    if status in lifecycle.STATUSES:
        rows = rows.filter(current_status=status)
    if query:
        rows = rows.filter(order_id__startswith=query)
    cursor = request.GET.get("cursor") or None
    try:
        orders, next_cursor = page(rows, cursor, PAGE_SIZE)
    except ValueError:  # a mangled link: show the first page rather than an error
        cursor = None
        orders, next_cursor = page(rows, None, PAGE_SIZE)
    return {
        "orders": orders, "status": status, "q": query, "cursor": cursor, "statuses": lifecycle.STATUSES,
        "next_cursor": next_cursor,
    }


@viewer_page
@require_GET
def order_list(request: HttpRequest) -> HttpResponse:
    context = _order_page(request)
    if request.htmx and request.GET.get("fragment") == "table":
        return render(request, "dashboard/_orders_table.html", context)
    context["overview"] = overview.compute()
    context["charts"] = charts.build(minutes=charts.window_minutes(request.GET.get("minutes")))
    return render(request, "dashboard/order_list.html", context)


@viewer_page
@require_GET
def overview_panel(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/_overview.html", {"overview": overview.compute(),
                                                         "status": request.GET.get("status", "")})


@viewer_page
@require_GET
def charts_panel(request: HttpRequest) -> HttpResponse:
    """The list page's pictures alone: what the live refresh swaps in (and a page of its own without htmx)."""
    context = {"charts": charts.build(minutes=charts.window_minutes(request.GET.get("minutes")))}
    template = "dashboard/_charts.html" if request.htmx else "dashboard/charts.html"
    return render(request, template, context)


# --- one order --------------------------------------------------------------------

def _order_context(order_id: str) -> dict[str, Any]:
    row = OrderProjection.objects.using(READ).filter(pk=order_id).first()
    if row is not None:
        return {
            "order": row.as_document(),
            "actions": available_actions(row.current_status, row.timeline),
            "last_seq": max((e.get("seq") or 0 for e in row.timeline), default=0),
        }
    # Just created: the read model has not projected it yet. Show what the order
    # service knows; the live stream fills the timeline in as soon as it is there.
    order = Order.objects.using(commands.ALIAS).filter(pk=order_id).first()
    if order is None:
        raise Http404("no such order")
    document = order.as_document()
    return {
        "order": {**document, "currentStatus": order.status, "timeline": [], "pending": True},
        "actions": available_actions(order.status, []),
        "last_seq": 0,
    }


@viewer_page
@require_GET
def order_page(request: HttpRequest, order_id: str) -> HttpResponse:
    return render(request, "dashboard/order_detail.html", _order_context(order_id))


@viewer_page
@require_GET
def order_panel(request: HttpRequest, order_id: str) -> HttpResponse:
    return render(request, "dashboard/_order_panel.html", _order_context(order_id))


@viewer_page
@require_GET
def order_saga(request: HttpRequest, order_id: str) -> HttpResponse:
    """The order's saga as service lanes, refreshed live on the order page."""
    return render(request, "dashboard/_saga.html", _order_context(order_id))


@staff_action
def order_action(request: HttpRequest, order_id: str, kind: str, value: str) -> HttpResponse:
    order = Order.objects.using(commands.ALIAS).filter(pk=order_id).first()
    if order is None:
        raise Http404("unknown order")
    operator = request.user.get_username()
    try:
        if kind == "retry" and value in ("inventory", "payment", "shipping"):
            event = operations.request_retry(order, value, operator)
        elif kind == "compensate" and value in ("refundPayment", "releaseInventory"):
            event = operations.request_compensation(order, value, operator)
        else:
            raise Http404("unknown action")
    except operations.Refused as exc:
        # Refused by the order service itself: nothing was sent, so nothing will show in the timeline.
        if request.htmx:  # htmx swaps only 2xx answers in: the refusal is the message shown
            return render(request, "dashboard/_flash.html", {"text": exc.reason, "event_id": ""})
        messages.error(request, exc.reason)
        return redirect("order-page", order_id=order_id)
    text = f"Requested {event.type} ({value}); the outcome appears in the timeline."
    if request.htmx:
        return render(request, "dashboard/_flash.html", {"text": text, "event_id": event.event_id})
    messages.success(request, text)
    return redirect("order-page", order_id=order_id)


# --- create an order ----------------------------------------------------------------

@page_permission(PLACE_ORDERS)
@require_GET
def new_order(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/order_new.html", {"skus": SKUS, "rows": range(4), "errors": []})


@action(PLACE_ORDERS)
def create_order(request: HttpRequest) -> HttpResponse:
    items = [
        {"sku": sku, "qty": qty}
        for sku, qty in zip(request.POST.getlist("sku"), request.POST.getlist("qty"))
        if sku and qty.strip()
    ]
    try:
        body = PlaceOrderRequest.model_validate({"items": items, "total": request.POST.get("total", "").strip()})
    except ValidationError as exc:
        return render(request, "dashboard/order_new.html",
                      {"skus": SKUS, "rows": range(4), "errors": error_details(exc), "posted": request.POST},
                      status=400)
    placed = commands.place_order([i.model_dump() for i in body.items], body.total)
    messages.success(request, f"Order {placed.order.order_id} created.")
    return redirect("order-page", order_id=placed.order.order_id)


# --- simulator controls -----------------------------------------------------------

@viewer_page
@require_GET
def controls(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/controls.html", {
        "stock": stock.all_stock(),
        "payment": PaymentSimulator.current("payment_service"),
        "shipping": ShippingSimulator.current("shipping_service"),
    })


def _number(value: str, kind: type, low: float, high: float) -> Any:
    try:
        number = kind(value)
    except (ValueError, InvalidOperation):
        raise ValueError(f"{value!r} is not a number") from None
    if not low <= number <= high:
        raise ValueError(f"{value} is outside {low}..{high}")
    return number


@staff_action
def set_stock(request: HttpRequest, sku: str) -> HttpResponse:
    try:
        stock.set_available(sku, _number(request.POST.get("available", ""), int, 0, 1_000_000_000))
        messages.success(request, f"{sku}: stock set.")
    except ValueError as exc:
        messages.error(request, f"{sku}: {exc}")
    return redirect("controls")


@staff_action
def set_payment_simulator(request: HttpRequest) -> HttpResponse:
    try:
        limit = request.POST.get("declineAbove", "").strip()
        PaymentSimulator.configure("payment_service",
                                   decline_above=_number(limit, Decimal, 0, 10**12) if limit else None,
                                   failure_rate=_number(request.POST.get("failureRate", "0") or "0", float, 0, 1))
        messages.success(request, "Payment simulator updated.")
    except ValueError as exc:
        messages.error(request, f"Payment simulator: {exc}")
    return redirect("controls")


@staff_action
def set_shipping_simulator(request: HttpRequest) -> HttpResponse:
    try:
        ShippingSimulator.configure("shipping_service", outage=request.POST.get("outage") == "on",
                                    failure_rate=_number(request.POST.get("failureRate", "0") or "0", float, 0, 1))
        messages.success(request, "Shipping simulator updated.")
    except ValueError as exc:
        messages.error(request, f"Shipping simulator: {exc}")
    return redirect("controls")


# --- dead letters -------------------------------------------------------------------

# Payloads, errors and operator names: for operators, like the API (GET /api/ops/dlq).
@page_permission(OPERATE)
@require_GET
def dead_letters(request: HttpRequest) -> HttpResponse:
    rows = list(DeadLetter.objects.using(READ).order_by("-created_at", "-id")[:200])
    # Link to an order only when it is one: a poison message's key can be anything.
    known = set(OrderProjection.objects.using(READ).filter(pk__in={r.order_id for r in rows if r.order_id})
                .values_list("pk", flat=True))
    for row in rows:
        row.known_order = row.order_id in known
        row.payload_text = json.dumps(row.payload, indent=2) if not isinstance(row.payload, str) else row.payload
    return render(request, "dashboard/dlq.html", {"letters": rows, "max_replays": deadletters.MAX_REPLAYS})


@staff_action
def replay_dead_letter(request: HttpRequest, letter_id: str) -> HttpResponse:
    corrected = None
    edited = request.POST.get("event", "").strip()
    try:
        if edited:
            corrected = json_input.loads(edited)
        event = deadletters.replay(letter_id, corrected)
        messages.success(request, f"Replayed {letter_id} as event {event.event_id} to {event.topic}.")
    except json_input.NotJSON as exc:
        messages.error(request, f"{letter_id}: the edited event is not JSON ({exc}).")
    except (deadletters.ReplayRefused, deadletters.InvalidCorrection) as exc:
        messages.error(request, f"{letter_id}: replay refused: {exc}")
    except LookupError:
        raise Http404("no such dead letter") from None
    return redirect("dlq")
