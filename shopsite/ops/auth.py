"""Who is asking, and may they: sessions or bearer tokens, checked against permissions.

Every page and API needs a signed-in user (a session) or `Authorization:
Bearer <token>` (shopsite/ops/tokens.py); what they may do is a Django
permission (shopsite/ops/permissions.py), narrowed by a token's scopes.

CSRF: a request authenticated by a bearer token carries no ambient
credential, so it needs no CSRF token; neither does an anonymous API call
(it is refused with 401 anyway). A session-authenticated call to the API
must send the CSRF token like any form.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

from shopsite.http import json_error
from shopsite.ops import tokens
from shopsite.ops.permissions import OPERATE

View = Callable[..., HttpResponse]


def bearer_credential(authorization: str) -> str | None:
    scheme, _, credential = authorization.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


class TokenAuthenticationMiddleware:
    """Sync and async: on an async request a remembered token (shopsite/ops/tokens.py) is checked
    in the event loop; only a token to look up, or a session to load, goes to a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: View):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        credential = bearer_credential(request.META.get("HTTP_AUTHORIZATION", ""))
        if credential is not None:
            identity = tokens.authenticate(credential)
            if identity is None:
                return unauthorised("invalid, expired or revoked token")
            _speaks_for(request, identity)
        elif request.path.startswith("/api/") and not request.user.is_authenticated:
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        credential = bearer_credential(request.META.get("HTTP_AUTHORIZATION", ""))
        if credential is not None:
            identity = tokens.remembered(credential) or await sync_to_async(tokens.authenticate)(credential)
            if identity is None:
                return unauthorised("invalid, expired or revoked token")
            _speaks_for(request, identity)
        elif request.path.startswith("/api/"):
            request.user = await request.auser()  # type: ignore[attr-defined]
            if not request.user.is_authenticated:
                request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return await self.get_response(request)  # type: ignore[misc]


def _speaks_for(request: HttpRequest, identity: tokens.Identity) -> None:
    """The request acts as the token's user; it carries no ambient credential, hence no CSRF check."""
    user = identity.user
    request.user = user
    request.token = identity  # type: ignore[attr-defined]

    async def auser() -> Any:
        return user

    request.auser = auser  # type: ignore[attr-defined]
    request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]


def allowed(request: HttpRequest, permission: str) -> bool:
    identity = getattr(request, "token", None)
    if identity is not None:
        return identity.allows(permission)
    return request.user.is_authenticated and request.user.has_perm(permission)


def api_permission(permission: str) -> Callable[[View], View]:
    """JSON views, sync or async: 401 when nobody is signed in, 403 without `permission`."""

    def refusal(request: HttpRequest, may: bool) -> HttpResponse | None:
        if not request.user.is_authenticated:
            return unauthorised("sign in or send Authorization: Bearer <token>")
        if not may:
            return json_error(403, f"permission {permission} required")
        request.ops_user = request.user  # type: ignore[attr-defined]
        return None

    def decorate(view: View) -> View:
        if iscoroutinefunction(view):
            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                request.user = user = await request.auser()  # type: ignore[attr-defined]
                # A token's permissions are at hand; a session user's are loaded from the database.
                in_hand = hasattr(request, "token") or not user.is_authenticated
                may = allowed(request, permission) if in_hand else await sync_to_async(allowed)(request, permission)
                return refusal(request, may) or await view(request, *args, **kwargs)

            return async_wrapper

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return refusal(request, allowed(request, permission)) or view(request, *args, **kwargs)

        return wrapper

    return decorate


def page_permission(permission: str, *, back_to_referer: bool = False) -> Callable[[View], View]:
    """Pages: to the login page when nobody is signed in, 403 without `permission`."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                # An action posted from a page returns to that page after signing in.
                target = (request.META.get("HTTP_REFERER") if back_to_referer else None) or request.get_full_path()
                return redirect_to_login(target)
            if not allowed(request, permission):
                return HttpResponseForbidden(f"permission {permission} required")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


# /api/ops/*: operators only.
ops_endpoint = api_permission(OPERATE)


def unauthorised(reason: str) -> HttpResponse:
    response = json_error(401, reason)
    response["WWW-Authenticate"] = 'Bearer realm="shopsite"'
    return response
