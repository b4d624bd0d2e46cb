"""Who may open a live stream: the same rules as the pages, at the ASGI level.

The streams are routed before Django's middleware (shopsite/asgi.py), so
this does here what the middleware and views do for everything else: the
Host header against ALLOWED_HOSTS, then a bearer token or the session
cookie, then the permission to view orders. Called in a worker thread
(it reads the database).
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host

from shopsite.ops import tokens
from shopsite.ops.auth import bearer_credential
from shopsite.ops.permissions import VIEW


def host_allowed(headers: dict[bytes, bytes]) -> bool:
    domain, _port = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def viewer(headers: dict[bytes, bytes]) -> tuple[int, Any]:
    """(200, user) when allowed; (401, None) without valid credentials; (403, user) without the permission."""
    credential = bearer_credential(headers.get(b"authorization", b"").decode("latin-1"))
    if credential is not None:
        identity = tokens.authenticate(credential)
        if identity is None:
            return 401, None
        return (200 if identity.allows(VIEW) else 403), identity.user
    session_key = parse_cookie(headers.get(b"cookie", b"").decode("latin-1")).get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return 401, None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
    if not user.is_authenticated:
        return 401, None
    return (200 if user.has_perm(VIEW) else 403), user
