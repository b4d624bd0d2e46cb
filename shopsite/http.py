"""JSON answers shared by every app's views: one shape for errors everywhere."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from pydantic import BaseModel, ValidationError

from shopsite import json_input
from shopsite.events.schemas import error_details


def json_error(status: int, error: str, details: Any = None) -> JsonResponse:
    body: dict[str, Any] = {"error": error}
    if details is not None:
        body["details"] = details
    return JsonResponse(body, status=status)


class BadRequest(Exception):
    def __init__(self, error: str, details: Any = None):
        super().__init__(error)
        self.error = error
        self.details = details

    def response(self) -> JsonResponse:
        return json_error(400, self.error, self.details)


def parse_body(request: HttpRequest, model: type[BaseModel]) -> Any:
    """Decode and validate a JSON body; raises BadRequest with field-level details."""
    if not request.body:
        raise BadRequest("request body is empty", [{"field": "(body)", "message": "expected a JSON object"}])
    try:
        data = json_input.loads(request.body)
    except json_input.NotJSON as exc:
        raise BadRequest("request body is not valid JSON", [{"field": "(body)", "message": str(exc)}]) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest("invalid request body", error_details(exc)) from exc


def settings_document(request: HttpRequest, current: Any, configure: Any, model: type[BaseModel]) -> JsonResponse:
    """GET shows a settings row's document (`current()`); PUT validates `model` and stores it (`configure(body)`).

    The payment and shipping simulators share this shape of endpoint.
    """
    if request.method == "GET":
        return JsonResponse(current().as_document())
    try:
        body = parse_body(request, model)
    except BadRequest as exc:
        return exc.response()
    return JsonResponse(configure(body).as_document())
