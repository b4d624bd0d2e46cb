from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from shopsite.events.metrics import exposition
from shopsite.ops.health import run_checks


async def _checked(request: HttpRequest, ready: bool) -> JsonResponse:
    # Async, and the checks run off the shared sync thread: a probe waiting on a
    # dead broker must not hold up every other (sync) view of this process.
    ok, results = await sync_to_async(run_checks, thread_sensitive=False)(ready=ready)
    if not (await request.auser()).is_authenticated:
        # Failing dependencies by name only: exception text (hosts, paths, versions) is for signed-in users.
        results = {name: {k: v for k, v in r.items() if k != "error"} for name, r in results.items()}
    body: dict = {"ok": ok, "checks": results}
    if not ok:
        body["failing"] = sorted(name for name, r in results.items() if not r["ok"])
    response = JsonResponse(body, status=200 if ok else 503)
    # Not Django's "Service Unavailable" error line per probe: a starting system is polled for
    # readiness several times a second, and health.py already warns when a dependency fails.
    response._has_been_logged = True  # type: ignore[attr-defined]  # what django.utils.log.log_response checks
    return response


@require_GET
async def health(request: HttpRequest) -> JsonResponse:
    """Dependencies reachable: each database this process uses, the broker, Redis."""
    return await _checked(request, ready=False)


@require_GET
async def ready(request: HttpRequest) -> JsonResponse:
    """Ready to take orders: the dependencies AND a consumer holding partitions for every served service."""
    return await _checked(request, ready=True)


@require_GET
async def live(request: HttpRequest) -> JsonResponse:
    """The process answers: no dependency is checked (a restart would not fix one)."""
    return JsonResponse({"ok": True})


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
