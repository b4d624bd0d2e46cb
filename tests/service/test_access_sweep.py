"""Every route, asked by an anonymous caller: refused unless it is on the short public list.

A sweep over the URL configuration rather than a list of URLs, so a view
added later without a sign-in check fails here.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, get_resolver

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]

# Open on purpose: load balancers, scrapers, API clients before they have a credential, signing in.
PUBLIC = re.compile(r"^/(health(/.*)?|metrics|api/schema|api/docs|accounts/(login|logout|link/[^/]+)/)$")


def _routes() -> list[str]:
    routes = []
    for pattern in get_resolver().url_patterns:
        if isinstance(pattern, URLPattern):  # the admin (an include) guards itself
            routes.append("/" + re.sub(r"<(?:\w+:)?\w+>", "x", str(pattern.pattern)))
    return routes


@pytest.mark.parametrize("method", ["get", "post"])
def test_no_route_answers_an_anonymous_caller(anonymous, method: str) -> None:
    leaks = []
    for route in _routes():
        if PUBLIC.match(route):
            continue
        response = getattr(anonymous, method)(route)
        refused = response.status_code in (401, 403, 405) or (
            response.status_code == 302 and response["Location"].startswith("/accounts/login/"))
        if not refused:
            leaks.append((route, response.status_code))
    assert not leaks
    assert len(_routes()) > 20  # the sweep saw the whole configuration
