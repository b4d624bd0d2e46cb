"""Handler tests talk to the views as a signed-in caller unless they say otherwise.

`client` carries an operator's API token (every permission: read, act, place
orders); tests of who may do what build their own clients from `user_client`.
"""

from __future__ import annotations

import pytest
from django.test import Client

from shopsite.ops import tokens
from shopsite.ops.roles import ensure_user


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(user).plaintext}"}


@pytest.fixture
def operator_user():
    return ensure_user("test-operator", operator=True)[0]


@pytest.fixture
def viewer_user():
    return ensure_user("test-viewer", operator=False)[0]


@pytest.fixture
def client(operator_user) -> Client:
    return Client(headers=bearer(operator_user))


@pytest.fixture
def anonymous() -> Client:
    return Client()
