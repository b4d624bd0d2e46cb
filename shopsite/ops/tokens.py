"""API tokens as the ecosystem does them: random, shown once, stored hashed.

A token reads `shs_<id><secret>`: 16 hex characters naming the row (one
indexed lookup) and 32 random bytes whose SHA-256 is all the database keeps,
compared in constant time. A token is good while it is not revoked, not
expired, its user is active, and (unless issued to outlive it) the user's
password is the one it was issued under.

Checking is cheap, since orders arrive with a token thousands of times a
second: a token seen valid is remembered in this process for
API_TOKEN_CACHE_SECONDS (5 s by default). The trade-off: revoking a token or
deactivating its user takes effect at once in the process that does it and
within that window everywhere else; set it to 0 to check the database on
every request. `last_used_at` is written at most once a minute per token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from shopsite.ops.models import ALL_SCOPES, ApiToken

PREFIX = "shs_"
ID_CHARS = 16
LAST_USED_EVERY = timedelta(minutes=1)
_CACHE_MAX_ENTRIES = 10_000
ALIAS = "default"  # users and tokens live with Django's own tables


@dataclass(frozen=True)
class Identity:
    """Who a valid token speaks for and what it may do."""

    token_id: str
    user: Any
    permissions: frozenset[str]
    expires_at: datetime | None

    def allows(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class Issued:
    token: ApiToken
    plaintext: str  # shown once, never stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def password_stamp(user: Any) -> str:
    return hashlib.sha256((user.password or "").encode()).hexdigest()[:16]


def _now() -> datetime:
    return datetime.now(timezone.utc)


DEFAULT_EXPIRY = "default"


def issue(user: Any, *, name: str = "", scopes: Iterable[str] = (ALL_SCOPES,),
          expires_in: timedelta | None | str = DEFAULT_EXPIRY, outlives_password: bool = False) -> Issued:
    """A new token for `user`; by default it expires after API_TOKEN_DEFAULT_DAYS; None: never."""
    if expires_in == DEFAULT_EXPIRY:
        days = settings.API_TOKEN_DEFAULT_DAYS
        expires_in = timedelta(days=days) if days > 0 else None
    token_id, secret = secrets.token_hex(ID_CHARS // 2), secrets.token_urlsafe(32)
    now = _now()
    row = ApiToken(id=token_id, digest=_digest(secret), user=user, name=name, scopes=sorted(set(scopes)),
                   created_at=now, expires_at=now + expires_in if isinstance(expires_in, timedelta) else None,
                   password_stamp=password_stamp(user), outlives_password=outlives_password)
    row.save(using=ALIAS, force_insert=True)
    return Issued(row, f"{PREFIX}{token_id}{secret}")


def revoke(token_ids: Iterable[str]) -> int:
    count = ApiToken.objects.using(ALIAS).filter(pk__in=list(token_ids), revoked_at=None).update(revoked_at=_now())
    forget_all()
    return count


def _parsed(plaintext: str) -> tuple[str, str] | None:
    """(token id, digest of the secret half), or None for what cannot be a token."""
    if not plaintext.startswith(PREFIX) or len(plaintext) < len(PREFIX) + ID_CHARS + 20:
        return None
    return plaintext[len(PREFIX):len(PREFIX) + ID_CHARS], _digest(plaintext[len(PREFIX) + ID_CHARS:])


def remembered(plaintext: str) -> Identity | None:
    """The identity this process validated for the token within API_TOKEN_CACHE_SECONDS, else None.

    No database access, so an async caller can ask without leaving its event loop; None means
    "ask authenticate()", not "invalid"."""
    parsed = _parsed(plaintext)
    return _cache.get(*parsed) if parsed is not None else None


def authenticate(plaintext: str) -> Identity | None:
    """The identity a presented token stands for, or None (malformed, unknown, revoked, expired...)."""
    parsed = _parsed(plaintext)
    if parsed is None:
        return None
    token_id, digest = parsed
    cached = _cache.get(token_id, digest)
    if cached is not None:
        return cached
    row = (ApiToken.objects.using(ALIAS).select_related("user").filter(pk=token_id).first())
    if row is None or not hmac.compare_digest(row.digest, digest):
        return None
    now = _now()
    user = row.user
    if (row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now)
            or not user.is_active
            or (not row.outlives_password and not hmac.compare_digest(row.password_stamp, password_stamp(user)))):
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        ApiToken.objects.using(ALIAS).filter(pk=token_id).update(last_used_at=now)
    held = user.get_all_permissions()
    allowed = held if ALL_SCOPES in row.scopes else held & set(row.scopes)
    identity = Identity(token_id, user, frozenset(allowed), row.expires_at)
    _cache.put(token_id, digest, identity)
    return identity


class _Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, Identity, float]] = {}

    def get(self, token_id: str, digest: str) -> Identity | None:
        entry = self._entries.get(token_id)
        if entry is None:
            return None
        known_digest, identity, until = entry
        if time.monotonic() >= until or not hmac.compare_digest(known_digest, digest):
            return None
        if identity.expires_at is not None and identity.expires_at <= _now():
            return None
        return identity

    def put(self, token_id: str, digest: str, identity: Identity) -> None:
        ttl = settings.API_TOKEN_CACHE_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= _CACHE_MAX_ENTRIES:
                self._entries.clear()
            self._entries[token_id] = (digest, identity, time.monotonic() + ttl)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _Cache()


def forget_all() -> None:
    """Drop this process's remembered tokens (after a revocation or a user change)."""
    _cache.clear()


@receiver(post_save, dispatch_uid="shopsite.ops.tokens.user_saved")
def _user_saved(sender: type, instance: Any, **kwargs: Any) -> None:
    """A deactivated user's tokens are revoked for good, not merely refused while inactive."""
    if sender is not get_user_model():
        return
    forget_all()
    if not instance.is_active:
        ApiToken.objects.using(ALIAS).filter(user=instance, revoked_at=None).update(revoked_at=_now())
