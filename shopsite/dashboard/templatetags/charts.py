from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from shopsite.dashboard import charts

register = template.Library()


@register.filter
def saga_svg(order: dict[str, Any]) -> SafeString:
    """An order document's timeline as service lanes (svg.py escapes every text it writes)."""
    return mark_safe(charts.saga(order))  # noqa: S308 - built by svg.py, which escapes all text
