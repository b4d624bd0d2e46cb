"""Deterministic-unless-asked failure injection shared by the payment and shipping simulators."""

from __future__ import annotations

import random

_random = random.Random()


def fails(failure_rate: float) -> bool:
    """True with probability failure_rate; never when it is 0, always when it is 1."""
    return failure_rate > 0 and _random.random() < failure_rate
