"""Identifiers that sort by creation time: UUID version 7 (RFC 9562).

Event ids end up as primary keys: every consumer's processed_events row is
keyed `consumer:eventId`, and the outbox indexes eventId. A random UUID
(version 4) puts each new key on a random page of those B-trees, so a batch
of a few hundred rows dirties a few hundred pages, which SQLite then writes
to its log at commit (measured on the inbox: 20 us of CPU per row against
4 us for time-ordered keys at 300,000 rows, and growing with the table).
A version 7 UUID starts with the time in milliseconds: new keys land next
to each other at the end of the index. It is a UUID like any other for
everything that reads it; the rest of its bits are random.
"""

from __future__ import annotations

import os
import time

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_A = 0xFFF << 64  # 12 random bits after the version
_RAND_B = (1 << 62) - 1  # 62 random bits after the variant


def time_ordered_uuid() -> str:
    """A new UUID version 7 in the canonical text form (lowercase, hyphenated)."""
    random_bits = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 of them are used
    value = (time.time_ns() // 1_000_000) << 80 | _VERSION_7 | random_bits & _RAND_A | _VARIANT | random_bits & _RAND_B
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
