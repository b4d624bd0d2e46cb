"""Parsing JSON that came from outside (an HTTP body, a Kafka message): total, never a surprise.

`json.loads` fails in more ways than JSONDecodeError: bytes that are not
UTF-8 (UnicodeDecodeError), a number of more than 4,300 digits (ValueError
from the int conversion limit), a document nested a few thousand levels
deep (RecursionError). Any of them escaping a handler's `try` crashed a
consumer or turned a bad request into a 500. Every such failure here
becomes one exception with a reason a person can read.

Documents nested deeper than MAX_DEPTH are refused too, even when Python
could parse them: nothing in the system's contracts is that deep, and the
copies made later (a dead letter wraps the message two levels deeper,
json.dumps recurses) would fail further from the cause.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class NotJSON(ValueError):
    """The input is not a JSON document this system accepts; str() says why."""


def loads(raw: bytes | bytearray | str) -> Any:
    try:
        data = json.loads(raw)
    except RecursionError:
        raise NotJSON(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except UnicodeDecodeError as exc:
        raise NotJSON(f"not utf-8 text: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, and the int digit limit
        raise NotJSON(str(exc)) from None
    # Every level opens with a bracket, so a document with few brackets cannot be deep:
    # counting them (in C) spares walking every event a consumer decodes.
    if _brackets(raw) > MAX_DEPTH and depth(data) > MAX_DEPTH:
        raise NotJSON(f"nested too deeply (more than {MAX_DEPTH} levels)")
    return data


def _brackets(raw: bytes | bytearray | str) -> int:
    return raw.count("[") + raw.count("{") if isinstance(raw, str) else raw.count(b"[") + raw.count(b"{")


def depth(data: Any) -> int:
    """Nesting depth of decoded JSON (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest
