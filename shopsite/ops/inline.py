"""Django's stock middleware, minus a thread hop per hook on an async request.

Under ASGI Django runs every hook of a MiddlewareMixin (process_request,
process_view, process_response) through sync_to_async: a hand-off to the
request's own worker thread and back, the first of which starts that thread.
With seven of them an async view (POST /api/orders) would pay a dozen hops.
The hooks of these middlewares only look at the request and the response
(headers, cookies, lazy objects), so on an async request they run in the
event loop. What may reach the database still goes to the thread, and only
when it will: saving a session that was used, storing messages that were
read or added. Anything else that touches the database in the event loop
is refused loudly by Django (SynchronousOnlyOperation), never silently.

settings.MIDDLEWARE names Django's classes (its deployment checks look for
them by name); the web server's handlers (shopsite/asgi_handlers.py) load
these forms in their place. On a sync request they behave as Django's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security


def view_hook_in_event_loop(middleware: Any) -> None:
    """Make `middleware.process_view` a coroutine function, which Django awaits instead of sending it to a thread.

    For a middleware in async mode whose process_view does no I/O; Django
    adapts hooks by what they are when it loads the middleware, after __init__.
    """
    hook: Callable[..., Any] = middleware.process_view

    async def process_view(request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any) -> Any:
        return hook(request, view_func, view_args, view_kwargs)

    middleware.process_view = process_view


class InlineHooks:
    """Mixed into a MiddlewareMixin subclass: its hooks run in the event loop on an async request."""

    async_mode: bool

    def __init__(self, get_response: Any):
        super().__init__(get_response)  # type: ignore[call-arg]
        if self.async_mode and hasattr(self, "process_view"):
            view_hook_in_event_loop(self)

    def responds_in_thread(self, request: HttpRequest) -> bool:
        """Whether process_response may reach the database for this request."""
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)  # type: ignore[attr-defined]
        if hasattr(self, "process_response"):
            if self.responds_in_thread(request):
                return await sync_to_async(self.process_response)(request, response)
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(InlineHooks, security.SecurityMiddleware):
    pass


class SessionMiddleware(InlineHooks, sessions.SessionMiddleware):
    def responds_in_thread(self, request: HttpRequest) -> bool:
        # An untouched session is neither loaded nor saved; a used one may be saved.
        session = getattr(request, "session", None)
        return session is not None and session.accessed


class CommonMiddleware(InlineHooks, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(InlineHooks, csrf.CsrfViewMiddleware):
    def __init__(self, get_response: Any):
        if settings.CSRF_USE_SESSIONS:  # the secret would come from the session: database reads in every hook
            raise ImproperlyConfigured("shopsite.ops.inline.CsrfViewMiddleware keeps the CSRF secret in its cookie")
        super().__init__(get_response)


class AuthenticationMiddleware(InlineHooks, auth.AuthenticationMiddleware):
    pass  # request.user stays lazy: loaded where it is first used (a sync view's thread, or request.auser())


class MessageMiddleware(InlineHooks, messages.MessageMiddleware):
    def responds_in_thread(self, request: HttpRequest) -> bool:
        # Messages read or added are stored, possibly in the session.
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class XFrameOptionsMiddleware(InlineHooks, clickjacking.XFrameOptionsMiddleware):
    pass


# Django's middleware, by the dotted path settings.MIDDLEWARE names it, -> its form here.
EVENT_LOOP_FORMS: dict[str, str] = {
    f"{cls.__bases__[-1].__module__}.{cls.__bases__[-1].__qualname__}": f"{__name__}.{cls.__qualname__}"
    for cls in (SecurityMiddleware, SessionMiddleware, CommonMiddleware, CsrfViewMiddleware,
                AuthenticationMiddleware, MessageMiddleware, XFrameOptionsMiddleware)
}
