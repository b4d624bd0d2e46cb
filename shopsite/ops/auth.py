"""Bearer tokens for /api/ops/*: signed with SECRET_KEY, naming a user.

Stateless on purpose: nothing to store per token, and deactivating the user
(or removing staff) revokes every token they hold on the next request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from shopsite.http import json_error

SALT = "shopsite.ops-token"


def issue_token(username: str) -> str:
    return signing.dumps({"u": username}, salt=SALT, compress=True)


def user_for_token(token: str) -> Any | None:
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        return None
    return get_user_model().objects.using("default").filter(username=data.get("u"), is_active=True).first()


def ops_endpoint(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """401 without a valid token, 403 for a user who is not staff; a logged-in staff session also works."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            user = user_for_token(header.removeprefix("Bearer ").strip())
            if user is None:
                return _unauthorised("invalid or revoked token")
        elif request.user.is_authenticated:
            user = request.user
        else:
            return _unauthorised("missing bearer token")
        if not user.is_staff:
            return json_error(403, "operator (staff) rights required")
        request.ops_user = user  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper


def _unauthorised(reason: str) -> HttpResponse:
    response = json_error(401, reason)
    response["WWW-Authenticate"] = 'Bearer realm="shopsite-ops"'
    return response
