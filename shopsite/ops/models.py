"""API tokens: stored hashed, owned by a user, scoped, expiring (see shopsite/ops/tokens.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from shopsite.ops.permissions import DECLARED

ALL_SCOPES = "*"


class ApiToken(models.Model):
    # The public half of the token (shown in lists, used to find the row); the secret
    # half is stored only as its SHA-256.
    id = models.CharField(primary_key=True, max_length=16)
    digest = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    # Permission names ("ops.place_orders") this token may use, of those its user has;
    # ["*"]: every permission of the user.
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Which password the token was issued under (a hash of the user's password hash):
    # a password change ends the token unless it was issued to outlive it.
    password_stamp = models.CharField(max_length=16)
    outlives_password = models.BooleanField(default=False)

    class Meta:
        db_table = "ops_api_token"
        ordering = ["-created_at"]
        permissions = DECLARED

    def __str__(self) -> str:
        return f"{self.id} ({self.name or 'unnamed'}, {self.user_id})"
