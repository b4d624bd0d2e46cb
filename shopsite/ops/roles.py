"""Putting users into the roles of shopsite/ops/permissions.py."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group

from shopsite.ops.permissions import OPERATORS, VIEWERS

ALIAS = "default"


def ensure_user(username: str, *, operator: bool) -> tuple[Any, bool]:
    """The user `username` in the operators (staff: admin too) or viewers group; created without a password."""
    User = get_user_model()
    # Created with its unusable password in the one INSERT: a token issued meanwhile (another
    # process) is stamped with the password the user keeps, never with a passing empty one.
    user, created = User.objects.db_manager(ALIAS).get_or_create(username=username,
                                                                 defaults={"password": make_password(None)})
    if operator:
        user.is_staff = True
    user.save(using=ALIAS)
    user.groups.add(Group.objects.using(ALIAS).get(name=OPERATORS if operator else VIEWERS))
    if operator:
        user.groups.remove(*Group.objects.using(ALIAS).filter(name=VIEWERS))
    return user, created
