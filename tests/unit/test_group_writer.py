"""The order writer's grouping (orders/writer.py), with a stand-in for the database write."""

from __future__ import annotations

import asyncio
import threading

import pytest

from orders.writer import GroupWriter

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")


def writer_of(write_together, max_group: int = 3) -> GroupWriter[int]:
    return GroupWriter(write_together, max_group=max_group, alias="default", name="test-group-writer")


def gather(writer: GroupWriter[int], requests: list[int]) -> list[object]:
    async def submit_all() -> list[object]:
        return await asyncio.gather(*(writer.submit(r) for r in requests), return_exceptions=True)

    return asyncio.run(submit_all())


def test_what_waits_goes_together_on_one_thread_and_each_caller_gets_its_own_answer():
    groups, threads = [], set()

    def write_together(group):
        groups.append(list(group))
        threads.add(threading.current_thread().name)
        return [ValueError(f"refused {r}") if r < 0 else r * 10 for r in group]

    writer = writer_of(write_together)
    try:
        results = gather(writer, [1, -2, 3, 4, 5])
        assert gather(writer, [6]) == [60]  # a lone request later: a group of one, nothing waits for more
    finally:
        writer.close()
    assert groups == [[1, -2, 3], [4, 5], [6]]
    assert len(threads) == 1 and threading.current_thread().name not in threads
    assert results[0] == 10 and results[2:] == [30, 40, 50]
    assert isinstance(results[1], ValueError) and str(results[1]) == "refused -2"


@pytest.mark.parametrize("broken", [lambda group: 1 / 0, lambda group: [1]])
def test_a_write_that_breaks_fails_its_group_and_the_writer_goes_on(broken):
    calls = []

    def write_together(group):
        calls.append(len(group))
        return broken(group) if len(calls) == 1 else list(group)

    writer = writer_of(write_together)
    try:
        first = gather(writer, [1, 2])
        assert gather(writer, [3, 4]) == [3, 4]
    finally:
        writer.close()
    assert all(isinstance(r, (ZeroDivisionError, RuntimeError)) for r in first), first


def test_a_caller_that_goes_away_does_not_stop_the_others():
    release = threading.Event()

    def write_together(group):
        release.wait(5)
        return list(group)

    writer = writer_of(write_together)

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(writer.submit(1))
        second = asyncio.ensure_future(writer.submit(2))
        await asyncio.sleep(0.05)
        first.cancel()  # its client disconnected while the group was being written
        release.set()
        return [await second, await writer.submit(3)]

    try:
        assert asyncio.run(scenario()) == [2, 3]
    finally:
        writer.close()
