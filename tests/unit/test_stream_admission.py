"""Stream admission without Redis: each process counts its own streams, caps still hold."""

from __future__ import annotations

import asyncio

import pytest

from shopsite.ops.stream_admission import Admission

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")


def test_without_redis_the_caps_hold_in_the_process(settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # discard port: refused at once
    settings.SSE_MAX_STREAMS, settings.SSE_MAX_STREAMS_PER_USER = 3, 2
    admission = Admission()

    async def scenario() -> list[str | None]:
        a1, a2, a3 = [await admission.admit("alice") for _ in range(3)]
        b1 = await admission.admit("bob")
        c1 = await admission.admit("carol")  # over the cap in all
        await admission.release("alice", a1)  # type: ignore[arg-type]
        a4 = await admission.admit("alice")
        return [a1, a2, a3, b1, c1, a4]

    a1, a2, a3, b1, c1, a4 = asyncio.run(scenario())
    assert a1 and a2 and a3 is None  # two per user
    assert b1 and c1 is None  # three in all
    assert a4  # a released place can be taken again
