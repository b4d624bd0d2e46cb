from __future__ import annotations

import logging
from datetime import datetime, timezone

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods
from pydantic import BaseModel

from orders import application as app
from orders import lifecycle
from orders.application import CompensateBody, PlaceOrderRequest, RetryBody
from orders.models import Order
from shopsite.http import BadRequest, json_error, parse_body
from shopsite.jsonlog import bind
from shopsite.ops.auth import api_permission, ops_endpoint
from shopsite.ops.permissions import PLACE_ORDERS, VIEW

log = logging.getLogger(__name__)


# Programs send a bearer token (no CSRF needed); a signed-in browser session sends the CSRF token.
# Async: with a remembered token the request stays in the event loop until its order is written
# (orders/writer.py), so a web process serves many orders with no thread of their own.
@api_permission(PLACE_ORDERS)
@require_http_methods(["POST"])
async def create_order(request: HttpRequest) -> JsonResponse:
    try:
        body: PlaceOrderRequest = parse_body(request, PlaceOrderRequest)
    except BadRequest as exc:
        return exc.response()
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and not (1 <= len(key) <= 200):
        return json_error(400, "invalid Idempotency-Key header", [{"field": "Idempotency-Key",
                                                                    "message": "must be 1..200 characters"}])
    try:
        placed = await app.aplace_order(body, key)
    except app.IdempotencyConflict:
        return json_error(422, "Idempotency-Key was already used with a different body")
    order = placed.order
    bind(orderId=order.order_id, correlationId=order.correlation_id)
    log.info("order placed" if placed.created else "order replayed for its Idempotency-Key")
    # A replayed key answers exactly like the first request did (same status
    # code), and says so in a header, as payment APIs do.
    response = JsonResponse(
        {"orderId": order.order_id, "correlationId": order.correlation_id, "status": lifecycle.CREATED}, status=201
    )
    if not placed.created:
        response["Idempotent-Replayed"] = "true"
    return response


@api_permission(VIEW)
@require_GET
def order_detail(request: HttpRequest, order_id: str) -> JsonResponse:
    order = app.find_order(order_id)
    if order is None:
        return json_error(404, f"order {order_id} not found")
    bind(orderId=order.order_id, correlationId=order.correlation_id)
    at = request.GET.get("at")
    if not at:
        return JsonResponse(order.as_document())
    try:
        as_of = _parse_instant(at)
    except ValueError as exc:
        return json_error(400, "invalid 'at' parameter", [{"field": "at", "message": str(exc)}])
    return _as_of(order, as_of)


def _parse_instant(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+"))  # a '+' in a query string arrives as ' '
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _as_of(order: Order, as_of: datetime) -> JsonResponse:
    try:
        return JsonResponse(app.order_as_of(order, as_of))
    except app.NotYetPlaced as exc:
        return json_error(404, str(exc))


@ops_endpoint
@require_http_methods(["POST"])
def retry_step(request: HttpRequest, order_id: str) -> JsonResponse:
    return _operator_request(request, order_id, RetryBody, app.request_retry)


@ops_endpoint
@require_http_methods(["POST"])
def compensate(request: HttpRequest, order_id: str) -> JsonResponse:
    return _operator_request(request, order_id, CompensateBody, app.request_compensation)


def _operator_request(request: HttpRequest, order_id: str, model: type[BaseModel], send) -> JsonResponse:
    order = app.find_order(order_id)
    if order is None:
        return json_error(404, f"order {order_id} not found")
    try:
        body = parse_body(request, model)
    except BadRequest as exc:
        return exc.response()
    try:
        event = send(order, body, request.ops_user.username)  # type: ignore[attr-defined]
    except app.Refused as exc:
        return json_error(409, exc.reason)
    return JsonResponse({"eventId": event.event_id, "type": event.type, "orderId": order_id}, status=202)
