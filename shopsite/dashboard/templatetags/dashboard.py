from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


def _value(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, dict) and {"sku", "qty"} <= set(v) for v in value):
        return ", ".join(f"{v['qty']}× {v['sku']}" for v in value)
    return str(value)


@register.filter
def event_details(details: dict[str, Any] | None) -> str:
    """'key=value' pairs of an event's payload, without the orderId every entry repeats.

    (A template can't loop over a dict that has an "items" key: `details.items`
    is the key, not the method.)
    """
    return "  ".join(f"{k}={_value(v)}" for k, v in (details or {}).items() if k != "orderId")
