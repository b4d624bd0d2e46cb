"""HTTP metrics and the JSON access log, one middleware for both.

The route label is the resolved URL pattern (``api/orders/<str:order_id>``),
never the raw path: one series per endpoint, not one per order id. The
access line replaces daphne's text access log (daphne runs with -v 0) and
Django's "Not Found: /path" warnings; it carries whatever the view bound
with ``shopsite.jsonlog.bind`` (orderId, correlationId).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from prometheus_client import Counter, Histogram

from shopsite.jsonlog import bind, request_scope
from shopsite.ops.inline import view_hook_in_event_loop
from shopsite.services import BY_APP_LABEL

log = logging.getLogger("shopsite.access")

# The web layer's own metrics (the messaging metrics live in shopsite/events/metrics.py).
HTTP_REQUESTS = Counter(
    "shopsite_http_requests_total",
    "HTTP requests by route (the URL pattern, never the raw path) and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "shopsite_http_request_seconds", "HTTP request latency by route.", ["method", "route"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

UNMATCHED_ROUTE = "unmatched"  # 404s that matched no pattern: one series, whatever was asked for
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Scraped and probed every few seconds: logged at DEBUG so they don't bury real traffic.
QUIET_ROUTES = frozenset({"health", "health/live", "health/ready", "metrics"})


def route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else UNMATCHED_ROUTE


def method_of(request: HttpRequest) -> str:
    return request.method if request.method in KNOWN_METHODS else "other"


class RequestMetricsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            view_hook_in_event_loop(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response: HttpResponseBase | None = None
        with request_scope():
            try:
                response = self.get_response(request)
                return response
            finally:
                _record(request, response, started)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response: HttpResponseBase | None = None
        with request_scope():
            try:
                response = await self.get_response(request)  # type: ignore[misc]
                return response
            finally:
                _record(request, response, started)

    def process_view(self, request: HttpRequest, view_func: Callable[..., Any], *args: Any) -> None:
        # Known once the URL resolved: which service's view runs, so its log lines say so.
        app = getattr(view_func, "__module__", "").split(".")[0]
        service = BY_APP_LABEL.get(app)
        if service is not None:
            bind(service=service.name)


def _record(request: HttpRequest, response: HttpResponseBase | None, started: float) -> None:
    seconds = time.perf_counter() - started
    status = response.status_code if response is not None else 500
    route = route_of(request)
    method = method_of(request)
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_SECONDS.labels(method, route).observe(seconds)
    if route in QUIET_ROUTES:
        # A probe's 503 is its answer ("not ready yet"), polled for; health.py warns about failing dependencies.
        level = logging.ERROR if status >= 500 and status != 503 else logging.DEBUG
    else:
        level = logging.ERROR if status >= 500 else logging.INFO
    log.log(level, "request", extra={"method": method, "route": route, "path": request.path,
                                     "status": status, "durationMs": round(seconds * 1000, 2)})

