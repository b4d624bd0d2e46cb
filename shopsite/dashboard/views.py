"""The operations dashboard: server-rendered pages, enhanced with htmx, live over SSE.

Every page works without JavaScript (plain links and forms); htmx adds
partial refreshes and the live stream. Signed-in viewers may look; operators
may act, and every action is a CSRF-protected POST.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from pydantic import ValidationError

import inventory.application as inventory
import orders.application as orders
import payment.application as payment
import readmodel.application as readmodel
import shipping.application as shipping
from orders import lifecycle
from shopsite import json_input
from shopsite.dashboard import charts, overview
from shopsite.dashboard.actions import available_actions
from shopsite.events.schemas import error_details
from shopsite.ops.auth import page_permission
from shopsite.ops.permissions import OPERATE, PLACE_ORDERS, VIEW

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
    wanted = {"status": status if status in lifecycle.STATUSES else None, "id_prefix": query or None}
    cursor = request.GET.get("cursor") or None
    try:
        rows, next_cursor = readmodel.orders_page(cursor, PAGE_SIZE, **wanted)
    except ValueError:  # a mangled link: show the first page rather than an error
        cursor = None
        rows, next_cursor = readmodel.orders_page(None, PAGE_SIZE, **wanted)
    return {
        "orders": rows, "status": status, "q": query, "cursor": cursor, "statuses": lifecycle.STATUSES,
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
    row = readmodel.find_order(order_id)
    if row is not None:
        return {
            "order": row.as_document(),
            "actions": available_actions(row.current_status, row.timeline),
            "last_seq": max((e.get("seq") or 0 for e in row.timeline), default=0),
        }
    # Just created: the read model has not projected it yet. Show what the order
    # service knows; the live stream fills the timeline in as soon as it is there.
    document = orders.order_document(order_id)
    if document is None:
        raise Http404("no such order")
    return {
        "order": {**document, "currentStatus": document["status"], "timeline": [], "pending": True},
        "actions": available_actions(document["status"], []),
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
    order = orders.find_order(order_id)
    if order is None:
        raise Http404("unknown order")
    operator = request.user.get_username()
    try:  # the API's body models decide which steps and actions exist
        if kind == "retry":
            event = orders.request_retry(order, orders.RetryBody(step=value), operator)
        elif kind == "compensate":
            event = orders.request_compensation(order, orders.CompensateBody(action=value), operator)
        else:
            raise Http404("unknown action")
    except ValidationError:
        raise Http404("unknown action") from None
    except orders.Refused as exc:
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
        body = orders.PlaceOrderRequest.model_validate({"items": items, "total": request.POST.get("total", "").strip()})
    except ValidationError as exc:
        return render(request, "dashboard/order_new.html",
                      {"skus": SKUS, "rows": range(4), "errors": error_details(exc), "posted": request.POST},
                      status=400)
    placed = orders.place_order(body)
    messages.success(request, f"Order {placed.order.order_id} created.")
    return redirect("order-page", order_id=placed.order.order_id)


# --- simulator controls -----------------------------------------------------------

@viewer_page
@require_GET
def controls(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/controls.html", {
        "stock": inventory.all_stock(),
        "payment": payment.simulator(),
        "shipping": shipping.simulator(),
    })


def _problems(exc: ValidationError) -> str:
    """A form's validation errors in one line, from the same body models as the API."""
    lines = []
    for error in exc.errors():
        limit = error.get("ctx", {})
        if error["type"] in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            bound = next(iter(limit.items()))
            text = f"{error['input']} is outside the allowed range ({error['loc'][-1]} {_OPS[bound[0]]} {bound[1]})"
        else:
            text = error["msg"]
        lines.append(text)
    return "; ".join(lines)


_OPS = {"ge": ">=", "le": "<=", "gt": ">", "lt": "<"}


@staff_action
def set_stock(request: HttpRequest, sku: str) -> HttpResponse:
    try:
        inventory.set_stock(sku, inventory.SetStock.model_validate({"available": request.POST.get("available", "")}))
        messages.success(request, f"{sku}: stock set.")
    except ValidationError as exc:
        messages.error(request, f"{sku}: {_problems(exc)}")
    return redirect("controls")


@staff_action
def set_payment_simulator(request: HttpRequest) -> HttpResponse:
    limit = request.POST.get("declineAbove", "").strip()
    try:
        payment.configure_simulator(payment.SimulatorBody.model_validate({
            "declineAbove": limit or None, "failureRate": request.POST.get("failureRate", "").strip() or "0"}))
        messages.success(request, "Payment simulator updated.")
    except ValidationError as exc:
        messages.error(request, f"Payment simulator: {_problems(exc)}")
    return redirect("controls")


@staff_action
def set_shipping_simulator(request: HttpRequest) -> HttpResponse:
    try:
        shipping.configure_simulator(shipping.SimulatorBody.model_validate({
            "outage": request.POST.get("outage") == "on",
            "failureRate": request.POST.get("failureRate", "").strip() or "0"}))
        messages.success(request, "Shipping simulator updated.")
    except ValidationError as exc:
        messages.error(request, f"Shipping simulator: {_problems(exc)}")
    return redirect("controls")


# --- dead letters -------------------------------------------------------------------

# Payloads, errors and operator names: for operators, like the API (GET /api/ops/dlq).
@page_permission(OPERATE)
@require_GET
def dead_letters(request: HttpRequest) -> HttpResponse:
    rows, _ = readmodel.dead_letters(200)
    # Link to an order only when it is one: a poison message's key can be anything.
    known = readmodel.known_orders(r.order_id for r in rows)
    for row in rows:
        row.known_order = row.order_id in known
        row.payload_text = json.dumps(row.payload, indent=2) if not isinstance(row.payload, str) else row.payload
    return render(request, "dashboard/dlq.html", {"letters": rows, "max_replays": readmodel.MAX_REPLAYS})


@staff_action
def replay_dead_letter(request: HttpRequest, letter_id: str) -> HttpResponse:
    corrected = None
    edited = request.POST.get("event", "").strip()
    try:
        if edited:
            corrected = json_input.loads(edited)
        event = readmodel.replay_dead_letter(letter_id, corrected)
        messages.success(request, f"Replayed {letter_id} as event {event.event_id} to {event.topic}.")
    except json_input.NotJSON as exc:
        messages.error(request, f"{letter_id}: the edited event is not JSON ({exc}).")
    except (readmodel.ReplayRefused, readmodel.InvalidCorrection) as exc:
        messages.error(request, f"{letter_id}: replay refused: {exc}")
    except LookupError:
        raise Http404("no such dead letter") from None
    return redirect("dlq")
