"""The HTTP middleware labels requests by URL pattern and logs one JSON access line per request."""

from __future__ import annotations

import json
import logging

import pytest

from shopsite.ops import middleware
from tests.service.helpers import json_log_lines

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def _requests(method: str, route: str, status: str) -> float:
    return middleware.HTTP_REQUESTS.labels(method, route, status)._value.get()


def test_requests_are_counted_by_route_pattern_never_by_raw_path(client, caplog) -> None:
    pattern = "api/orders/<str:order_id>"
    before, unmatched = _requests("GET", pattern, "404"), _requests("GET", "unmatched", "404")
    with caplog.at_level(logging.INFO, logger="shopsite.access"):
        assert client.get("/api/orders/no-such-order").status_code == 404
        assert client.get("/no/such/page/12345").status_code == 404
    assert _requests("GET", pattern, "404") == before + 1
    assert _requests("GET", "unmatched", "404") == unmatched + 1
    (line, other) = [r for r in caplog.records if r.name == "shopsite.access"]
    assert (line.route, line.status, line.method, line.path) == (pattern, 404, "GET", "/api/orders/no-such-order")
    assert other.route == "unmatched"


def test_placing_an_order_binds_its_ids_to_the_access_line(client) -> None:
    with json_log_lines() as lines:
        response = client.post("/api/orders", data=json.dumps({"items": [{"sku": "SKU-1", "qty": 1}], "total": 5}),
                               content_type="application/json")
    assert response.status_code == 201
    body = response.json()
    (access,) = [line for line in lines if line["logger"] == "shopsite.access"]
    (placed,) = [line for line in lines if line["message"] == "order placed"]
    for line in (access, placed):
        assert (line["orderId"], line["correlationId"], line["service"]) == (
            body["orderId"], body["correlationId"], "orders")
    assert (access["route"], access["status"], access["method"]) == ("api/orders", 201, "POST")
    assert "items" not in access and "total" not in access
