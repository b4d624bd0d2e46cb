"""Opaque cursors for newest-first lists: (createdAt, orderId) of the last row."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from django.db.models import Q, QuerySet

from shopsite import json_input


def encode_cursor(created_at: datetime, order_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), order_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, order_id = json_input.loads(raw)  # NotJSON is a ValueError
        return datetime.fromisoformat(created_at), str(order_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API issued") from exc


def after_cursor(queryset: QuerySet, cursor: str | None) -> QuerySet:
    """Rows strictly after the cursor in (createdAt desc, orderId desc) order."""
    ordered = queryset.order_by("-created_at", "-order_id")
    if not cursor:
        return ordered
    created_at, order_id = decode_cursor(cursor)
    return ordered.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, order_id__lt=order_id))


def page(queryset: QuerySet, cursor: str | None, limit: int) -> tuple[list, str | None]:
    """Up to `limit` rows after the cursor (newest first) and the cursor of the next page, or None.

    Raises ValueError for a cursor this API did not issue.
    """
    rows = list(after_cursor(queryset, cursor)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].created_at, rows[-1].order_id) if more else None)
