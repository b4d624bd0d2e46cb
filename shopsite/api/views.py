"""/api/schema (the OpenAPI document) and /api/docs (Swagger UI from packaged static files).

Both are open like /health: the schema tells how to call the API, not what
is in it, and a client needs it before it has a credential.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from shopsite.api import catalogue, openapi

DESCRIPTION = (
    "The order pipeline's REST API. Errors always have the shape `{\"error\", \"details\"}`. "
    "Authenticate with `Authorization: Bearer <token>` (`python manage.py issue_ops_token <user>` prints one) "
    "or a dashboard session."
)


@functools.cache
def document() -> dict[str, Any]:
    served = [s.name for s in settings.SERVED_SERVICES]
    return openapi.build(catalogue.endpoints(served), title="shopsite", version="1", description=DESCRIPTION)


@require_GET
def schema(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document(), json_dumps_params={"indent": 1})


@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    return render(request, "api/docs.html")
