"""One-time sign-in links for a local operator (what `make run` prints for newcomers).

The link is signed with the secret key, expires after SIGN_IN_LINK_MINUTES
and carries a fingerprint of the user's last login and password: signing in
changes the last login, so a link works once.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

SALT = "shopsite.sign-in-link"


def _state(user: Any) -> str:
    raw = f"{user.pk}|{user.last_login.isoformat() if user.last_login else ''}|{user.password}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def make_path(user: Any) -> str:
    token = signing.dumps({"u": str(user.pk), "s": _state(user)}, salt=SALT)
    return reverse("sign-in-link", args=[token])


def user_for(token: str) -> Any | None:
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.SIGN_IN_LINK_MINUTES * 60)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    user = get_user_model().objects.using("default").filter(pk=data.get("u"), is_active=True).first()
    return user if user is not None and data.get("s") == _state(user) else None


@never_cache
@require_GET
def sign_in_with_link(request: HttpRequest, token: str) -> HttpResponse:
    user = user_for(token)
    if user is None:
        return HttpResponseBadRequest("This sign-in link is invalid, used or expired. "
                                      "Run `python manage.py bootstrap_operator` for a new one.")
    login(request, user, backend="shopsite.ops.backends.PermissionBackend")
    return redirect(settings.LOGIN_REDIRECT_URL)
