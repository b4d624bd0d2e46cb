"""Django's ASGI handler as the web server runs it: hooks in the event loop, and no thread for async views.

`Handler`: Django's own, with settings.MIDDLEWARE loaded in the forms of
shopsite/ops/inline.py, so an async request leaves the event loop only
where something needs a thread.

`AsyncViewHandler`, for the routes whose view is async (POST /api/orders):
Django's handler gives every request a ThreadSensitiveContext, so the
request's first sync step starts a thread for that request alone, joined
when it ends. Even an async view has such steps (Django runs the
request_started receivers and closes the response through sync_to_async),
and that thread would cost more CPU than the view itself. Here those short
steps, and the rare lookups an async request cannot do in the event loop (a
token not remembered yet, a session), run on one long-lived thread that
these requests share (asgiref's thread for thread-sensitive code outside
any context). Sync views keep a thread each, so a slow one never holds up
another.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.urls import URLPattern, get_resolver, path

from shopsite.ops.inline import EVENT_LOOP_FORMS


class Handler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # Django's loader reads settings.MIDDLEWARE; it gets the same list, Django's classes in their
        # event-loop forms, for as long as it loads (once, at start-up, before anything is served).
        listed = settings.MIDDLEWARE
        settings.MIDDLEWARE = [EVENT_LOOP_FORMS.get(dotted, dotted) for dotted in listed]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = listed


class AsyncViewHandler(Handler):
    """For async views only: their sync steps share one thread instead of each request starting one."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


def async_view_routes(application: Any) -> list[URLPattern]:
    """Channels routes sending the top-level URL patterns whose views are async to `application`."""
    return [path(str(p.pattern), application) for p in get_resolver().url_patterns
            if isinstance(p, URLPattern) and iscoroutinefunction(p.callback)]
