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
    def __init__(self, get_response: View):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        credential = bearer_credential(request.META.get("HTTP_AUTHORIZATION", ""))
        if credential is not None:
            identity = tokens.authenticate(credential)
            if identity is None:
                return unauthorised("invalid, expired or revoked token")
            user = identity.user
            request.user = user
            request.token = identity  # type: ignore[attr-defined]

            async def auser() -> Any:
                return user

            request.auser = auser  # type: ignore[attr-defined]
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        elif request.path.startswith("/api/") and not request.user.is_authenticated:
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return self.get_response(request)


def allowed(request: HttpRequest, permission: str) -> bool:
    identity = getattr(request, "token", None)
    if identity is not None:
        return identity.allows(permission)
    return request.user.is_authenticated and request.user.has_perm(permission)


def api_permission(permission: str) -> Callable[[View], View]:
    """JSON views: 401 when nobody is signed in, 403 without `permission`."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return unauthorised("sign in or send Authorization: Bearer <token>")
            if not allowed(request, permission):
                return json_error(403, f"permission {permission} required")
            request.ops_user = request.user  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

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
