"""A consumer's offsets: only applied batches, coalesced into asynchronous commits, waited for when it matters."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from confluent_kafka import TopicPartition

from shopsite.events.offsets import Offsets

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")


@dataclass
class Msg:
    t: str
    p: int
    o: int

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


class Client:
    """What Offsets calls on a confluent_kafka.Consumer, recorded."""

    def __init__(self) -> None:
        self.commits: list[tuple[dict[tuple[str, int], int], bool]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(({(tp.topic, tp.partition): tp.offset for tp in offsets}, asynchronous))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_batches_within_the_interval_become_one_asynchronous_commit_of_the_next_offsets():
    clock, client = Clock(), Client()
    offsets = Offsets("orders", interval=0.1, clock=clock)
    offsets.note([Msg("a", 0, 5), Msg("a", 0, 6), Msg("b", 1, 2)])
    offsets.commit_soon(client, idle=False)  # the first one goes out: nothing was sent for a while
    offsets.note([Msg("a", 0, 7)])
    offsets.commit_soon(client, idle=False)
    offsets.note([Msg("a", 0, 8), Msg("b", 1, 3)])
    offsets.commit_soon(client, idle=False)
    assert client.commits == [({("a", 0): 7, ("b", 1): 3}, True)]
    clock.now += 0.1
    offsets.commit_soon(client, idle=False)
    assert client.commits[1:] == [({("a", 0): 9, ("b", 1): 4}, True)]


def test_an_idle_consumer_commits_what_it_noted_at_once_and_nothing_when_it_noted_nothing():
    clock, client = Clock(), Client()
    offsets = Offsets("orders", interval=10, clock=clock)
    offsets.commit_soon(client, idle=True)
    assert client.commits == []
    offsets.note([Msg("a", 0, 1)])
    offsets.commit_soon(client, idle=False)
    offsets.note([Msg("a", 0, 2)])
    offsets.commit_soon(client, idle=False)  # within the interval: held back
    offsets.commit_soon(client, idle=True)
    assert client.commits == [({("a", 0): 2}, True), ({("a", 0): 3}, True)]


def test_revoked_partitions_are_committed_and_waited_for_the_others_kept():
    client = Client()
    offsets = Offsets("orders", interval=10, clock=Clock())
    offsets.note([Msg("a", 0, 1)])
    offsets.commit_soon(client, idle=False)
    offsets.note([Msg("a", 0, 2), Msg("a", 1, 4)])
    offsets.commit_now(client, [TopicPartition("a", 1)])
    assert client.commits[1:] == [({("a", 1): 5}, False)]
    offsets.commit_now(client)
    assert client.commits[2:] == [({("a", 0): 3}, False)]
    offsets.commit_now(client)  # nothing left: no request at all
    assert len(client.commits) == 3


def test_forgotten_offsets_are_never_committed():
    client = Client()
    offsets = Offsets("orders", interval=0, clock=Clock())
    offsets.note([Msg("a", 0, 1), Msg("a", 1, 1)])
    offsets.forget([TopicPartition("a", 0)])
    offsets.commit_now(client)
    offsets.note([Msg("a", 2, 1)])
    offsets.forget()
    offsets.commit_soon(client, idle=True)
    assert client.commits == [({("a", 1): 2}, False)]
