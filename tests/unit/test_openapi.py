"""The API schema: valid OpenAPI 3.1, and naming exactly the routes the server has."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import OpenAPIV31SpecValidator

from shopsite.api import catalogue
from shopsite.api.views import document
from shopsite.services import SERVICES

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")

NOT_JSON_API = {"/metrics", "/api/schema", "/api/docs"}


def _routes(patterns: list[URLPattern | URLResolver], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            found |= _routes(p.url_patterns, route)
        else:
            found.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return found


def _api_routes() -> set[str]:
    return {r for r in _routes(get_resolver().url_patterns)
            if (r.startswith("/api/") or r.startswith("/health")) and r not in NOT_JSON_API}


def _normalised(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


def test_schema_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(doc).validate()


def test_schema_and_url_configuration_name_the_same_routes() -> None:
    in_schema = {_normalised(ep.path) for ep in catalogue.endpoints([s.name for s in SERVICES])}
    assert in_schema == {_normalised(r) for r in _api_routes()}


def test_every_operation_documents_its_errors_and_access() -> None:
    for path, operations in document()["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            assert any(c.startswith("2") for c in codes), (method, path)
            if op["x-access"] != "public":
                assert {"401", "403"} <= codes and op["security"], (method, path)
            if "requestBody" in op or "parameters" in op and any(p["in"] == "query" for p in op["parameters"]):
                assert "400" in codes, (method, path)


def test_request_bodies_are_the_views_own_models() -> None:
    doc = document()
    place = doc["paths"]["/api/orders"]["post"]["requestBody"]["content"]["application/json"]
    schema = doc["components"]["schemas"][place["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"items", "total"}
    assert schema["additionalProperties"] is False  # the view forbids unknown fields, and so does the schema
    assert place["example"]["items"][0]["sku"] == "SKU-1"
