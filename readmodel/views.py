from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods

from orders import lifecycle
from readmodel import application as app
from readmodel.application import ReplayBody
from shopsite.events.deadletter import REPLAY_COUNT_HEADER
from shopsite.http import BadRequest, json_error, parse_body
from shopsite.jsonlog import bind
from shopsite.ops.auth import api_permission, ops_endpoint
from shopsite.ops.permissions import VIEW

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@api_permission(VIEW)
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
    try:
        results, next_cursor = app.orders_page(request.GET.get("cursor"), limit, status=status)
    except ValueError as exc:
        return json_error(400, "invalid cursor", [{"field": "cursor", "message": str(exc)}])
    return JsonResponse({"results": [p.as_document() for p in results], "next": next_cursor})


@api_permission(VIEW)
@require_GET
def order_detail(request: HttpRequest, order_id: str) -> JsonResponse:
    row = app.find_order(order_id)
    if row is None:
        return json_error(404, f"order {order_id} not in the read model (yet)")
    bind(orderId=row.order_id, correlationId=row.correlation_id or None)
    return JsonResponse(row.as_document())


@ops_endpoint
@require_GET
def dead_letter_list(request: HttpRequest) -> JsonResponse:
    try:
        limit = min(max(int(request.GET.get("limit", 100)), 1), 500)
    except ValueError:
        return json_error(400, "invalid limit", [{"field": "limit", "message": "an integer from 1 to 500"}])
    rows, total = app.dead_letters(limit, status=request.GET.get("status") or None)
    return JsonResponse({"results": [r.as_document() for r in rows], "total": total})


@ops_endpoint
@require_http_methods(["POST"])
def dead_letter_replay(request: HttpRequest, letter_id: str) -> JsonResponse:
    corrected = None
    if request.body:
        try:
            corrected = parse_body(request, ReplayBody).event
        except BadRequest as exc:
            return exc.response()
    try:
        event = app.replay_dead_letter(letter_id, corrected)
    except LookupError:
        return json_error(404, f"no dead letter {letter_id}")
    except app.InvalidCorrection as exc:
        return json_error(400, "invalid corrected event", [{"field": "event", "message": str(exc)}])
    except app.ReplayRefused as exc:
        return json_error(409, "replay refused", [{"field": "event" if corrected else "(dead letter)",
                                                   "message": str(exc)}])
    return JsonResponse({"eventId": event.event_id, "topic": event.topic,
                         "replayCount": event.headers.get(REPLAY_COUNT_HEADER)}, status=202)
