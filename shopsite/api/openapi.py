"""Build the OpenAPI 3.1 document from endpoint declarations and pydantic models.

Pure: no Django request, no database. Component schemas come from pydantic
(`models_json_schema`), so the schema says exactly what the views validate
and what the response models describe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"

Access = Literal["public", "viewer", "operator", "place_orders"]

ACCESS_TEXT: dict[str, str] = {
    "public": "No credentials needed.",
    "viewer": "Needs a signed-in user or a bearer token that may read.",
    "operator": "Needs an operator: a staff session (with its CSRF token) or a bearer token with operator rights.",
    "place_orders": "Needs a credential allowed to place orders (a storefront or service token).",
}


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["query", "header", "path"]
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI style: /api/orders/{orderId}
    operation_id: str
    summary: str
    tag: str
    access: Access
    responses: dict[int, tuple[type[BaseModel] | None, str]]
    body: type[BaseModel] | None = None
    body_required: bool = True
    params: Sequence[Param] = ()
    body_example: dict[str, Any] | None = None
    description: str = ""
    media_type: str = "application/json"
    extra: dict[str, Any] = field(default_factory=dict)


def _models(endpoints: Iterable[Endpoint]) -> list[tuple[type[BaseModel], str]]:
    """(model, mode) pairs: request bodies as validated, responses as serialised."""
    seen: dict[tuple[type[BaseModel], str], None] = {}  # an ordered set; models are told apart by identity
    for ep in endpoints:
        if ep.body is not None:
            seen[(ep.body, "validation")] = None
        for model, _ in ep.responses.values():
            if model is not None:
                seen[(model, "serialization")] = None
    return list(seen)


def _path_params(path: str) -> list[Param]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    return [Param(n, "path", {"type": "string", "minLength": 1}, required=True) for n in names]


def _parameter(p: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
                           "schema": p.schema}
    if p.description:
        out["description"] = p.description
    return out


def _security(access: Access) -> list[dict[str, list[str]]]:
    if access == "public":
        return []
    return [{"bearerAuth": []}, {"sessionCookie": []}]


def _operation(ep: Endpoint, refs: dict[tuple[type[BaseModel], str], dict[str, Any]]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": ep.operation_id,
        "summary": ep.summary,
        "tags": [ep.tag],
        "description": "\n\n".join(filter(None, [ep.description, ACCESS_TEXT[ep.access]])),
        "security": _security(ep.access),
        "x-access": ep.access,
        "responses": {},
    }
    params = [*_path_params(ep.path), *ep.params]
    if params:
        op["parameters"] = [_parameter(p) for p in params]
    if ep.body is not None:
        content: dict[str, Any] = {"schema": refs[(ep.body, "validation")]}
        if ep.body_example is not None:
            content["example"] = ep.body_example
        op["requestBody"] = {"required": ep.body_required, "content": {"application/json": content}}
    for status, (model, text) in sorted(ep.responses.items()):
        response: dict[str, Any] = {"description": text}
        if model is not None:
            response["content"] = {ep.media_type: {"schema": refs[(model, "serialization")]}}
        op["responses"][str(status)] = response
    op.update(ep.extra)
    return op


def build(endpoints: Sequence[Endpoint], *, title: str, version: str, description: str) -> dict[str, Any]:
    refs, defs = models_json_schema(_models(endpoints), ref_template=REF)  # type: ignore[arg-type]
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "An API token: `manage.py issue_ops_token <user>` prints one."},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "sessionid",
                                  "description": "A signed-in dashboard session; unsafe methods also need "
                                                 "the X-CSRFToken header."},
            },
        },
    }
