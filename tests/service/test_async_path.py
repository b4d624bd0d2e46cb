"""The API as the web server runs it (shopsite/asgi_handlers.py), in-process over ASGI.

POST /api/orders is an async view behind Django's middleware in their
event-loop forms (shopsite/ops/inline.py), placing through the order writer;
the other views are sync behind the same middleware. The contract is the
one the sync path keeps (test_api.py, test_security.py): 201 and its shape,
Idempotency-Key, 400 with details, 401/403, CSRF for a session, security
headers, metrics and the access line.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client

from orders import application, commands
from orders.models import Order
from orders.writer import GroupWriter
from shopsite.asgi_handlers import AsyncViewHandler, Handler, async_view_routes
from shopsite.ops import middleware, tokens
from shopsite.ops.roles import ensure_user
from tests.service.helpers import json_log_lines

# Transactional: the handlers' sync steps and the writer run on threads with connections of their own.
pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"),
              pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ORDER = {"items": [{"sku": "SKU-1", "qty": 2}], "total": 20}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(app: Any, method: str, path: str, body: Any = None, **headers: str) -> Answer:
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await asyncio.Event().wait()  # the client stays connected
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        path_only, _, query = path.partition("?")
        await app({
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path_only, "raw_path": path_only.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                        *((k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items())],
            "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
        }, receive, send)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer_headers: dict[str, str] = {}
    for name, value in start["headers"]:
        answer_headers[name.decode().lower()] = answer_headers.get(name.decode().lower(), "") + value.decode()
    return Answer(start["status"], answer_headers, b"".join(m.get("body", b"") for m in sent
                                                              if m["type"] == "http.response.body"))


@pytest.fixture(autouse=True)
def _shared_thread_closes_its_connections() -> Iterator[None]:
    yield
    # Connections outlive a request where CONN_MAX_AGE says so (PostgreSQL), and must be closed
    # before the test databases go: the async views' sync steps ran on asgiref's one shared
    # thread; a sync view's thread is gone, its connection closed once garbage collected.
    asyncio.run(sync_to_async(connections.close_all)())
    gc.collect()


@pytest.fixture
def order_writer(monkeypatch: pytest.MonkeyPatch) -> Iterator[GroupWriter]:
    """The web server's order writer (started by shopsite/asgi.py there), for this test only."""
    writer = GroupWriter(commands.place_orders_together, max_group=100, alias=commands.ALIAS, name="test-writer")
    monkeypatch.setattr(application, "_writer", writer)
    yield writer
    writer.close()


@pytest.fixture
def async_views(order_writer: GroupWriter) -> AsyncViewHandler:
    return AsyncViewHandler()


@pytest.fixture
def operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(ensure_user('async-operator', operator=True)[0]).plaintext}"}


def test_the_async_routes_are_the_async_views():
    routes = [str(route.pattern) for route in async_view_routes(lambda scope, receive, send: None)]
    assert routes == ["health", "health/live", "health/ready", "api/orders"]


def test_an_order_is_placed_and_answered_as_on_the_sync_path(async_views, operator):
    tokens.forget_all()  # the first request looks the token up (a thread); the second finds it remembered
    for _ in range(2):
        answer = call(async_views, "POST", "/api/orders", ORDER, **operator)
        assert answer.status == 201, answer.body
        body = answer.json()
        assert set(body) == {"orderId", "correlationId", "status"} and body["status"] == "CREATED"
        order = Order.objects.using(commands.ALIAS).get(pk=body["orderId"])
        assert order.correlation_id == body["correlationId"] and float(order.total) == 20
    # Django's security middleware ran (in the event loop), as for every other answer.
    assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["content-type"] == "application/json"


def test_idempotency_keys_replay_conflict_and_refuse_bad_keys(async_views, operator):
    first = call(async_views, "POST", "/api/orders", ORDER, **operator, Idempotency_Key="a-1")
    again = call(async_views, "POST", "/api/orders", ORDER, **operator, Idempotency_Key="a-1")
    assert first.status == again.status == 201
    assert again.json()["orderId"] == first.json()["orderId"] and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    conflict = call(async_views, "POST", "/api/orders", {**ORDER, "total": 21}, **operator, Idempotency_Key="a-1")
    assert conflict.status == 422 and conflict.json()["error"]
    too_long = call(async_views, "POST", "/api/orders", ORDER, **operator, Idempotency_Key="k" * 201)
    assert too_long.status == 400 and too_long.json()["details"][0]["field"] == "Idempotency-Key"
    assert Order.objects.using(commands.ALIAS).count() == 1


@pytest.mark.parametrize(("body", "field"), [
    (b"not json", "(body)"), (b"", "(body)"), ({"items": [], "total": 5}, "items"),
    ({"items": [{"sku": "SKU-1", "qty": 0}], "total": 5}, "items.0.qty"), ({**ORDER, "coupon": "FREE"}, "coupon"),
])
def test_invalid_bodies_get_400_with_details_and_write_nothing(async_views, operator, body, field):
    answer = call(async_views, "POST", "/api/orders", body, **operator)
    assert answer.status == 400 and field in [d["field"] for d in answer.json()["details"]]
    assert Order.objects.using(commands.ALIAS).count() == 0


def test_who_may_place_orders(async_views):
    anonymous = call(async_views, "POST", "/api/orders", ORDER)
    assert anonymous.status == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert call(async_views, "POST", "/api/orders", ORDER, Authorization="Bearer shs_forged").status == 401
    viewer = tokens.issue(ensure_user("async-viewer", operator=False)[0]).plaintext
    assert call(async_views, "POST", "/api/orders", ORDER, Authorization=f"Bearer {viewer}").status == 403
    operator = tokens.issue(ensure_user("async-operator", operator=True)[0]).plaintext
    assert call(async_views, "GET", "/api/orders", Authorization=f"Bearer {operator}").status == 405
    assert Order.objects.using(commands.ALIAS).count() == 0


def test_a_signed_in_session_needs_the_csrf_token(async_views):
    browser = Client()
    browser.force_login(ensure_user("async-browser", operator=True)[0])
    # Pages go through the other handler, with the same middleware: the dashboard sets the CSRF cookie.
    page = call(Handler(), "GET", "/", Cookie=f"sessionid={browser.cookies['sessionid'].value}")
    assert page.status == 200, page.body[:300]
    csrf = page.headers["set-cookie"].split("csrftoken=", 1)[1].split(";", 1)[0]
    cookies = f"sessionid={browser.cookies['sessionid'].value}; csrftoken={csrf}"
    assert call(async_views, "POST", "/api/orders", ORDER, Cookie=cookies).status == 403
    placed = call(async_views, "POST", "/api/orders", ORDER, Cookie=cookies, X_CSRFToken=csrf)
    assert placed.status == 201, placed.body
    assert call(Handler(), "GET", f"/api/orders/{placed.json()['orderId']}", Cookie=cookies).status == 200


def test_the_request_is_counted_and_logged_with_its_order(async_views, operator):
    before = middleware.HTTP_REQUESTS.labels("POST", "api/orders", "201")._value.get()
    with json_log_lines() as lines:
        answer = call(async_views, "POST", "/api/orders", ORDER, **operator)
    assert middleware.HTTP_REQUESTS.labels("POST", "api/orders", "201")._value.get() == before + 1
    (access,) = [line for line in lines if line["logger"] == "shopsite.access"]
    assert (access["route"], access["status"], access["orderId"], access["service"]) == (
        "api/orders", 201, answer.json()["orderId"], "orders")
