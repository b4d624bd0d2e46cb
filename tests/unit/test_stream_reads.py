"""Stream database reads run on their own threads, side by side, not on the one thread sync views share."""

from __future__ import annotations

import asyncio
import threading

import pytest

from readmodel.streams import in_reader_thread

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")


def test_stream_reads_run_side_by_side_on_their_own_threads():
    # Each read waits for the other: if reads queued behind each other (one thread, as with
    # database_sync_to_async's thread-sensitive default), the barrier would break.
    barrier = threading.Barrier(2, timeout=10)
    names: list[str] = []

    def read() -> None:
        names.append(threading.current_thread().name)
        barrier.wait()

    async def two_streams() -> None:
        await asyncio.gather(in_reader_thread(read)(), in_reader_thread(read)())

    asyncio.run(two_streams())
    assert len(set(names)) == 2 and all(n.startswith("stream-db") for n in names), names
