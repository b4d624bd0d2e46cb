"""Live updates: batches committed together tell the streams once, and each stream picks out its own order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.layers import get_channel_layer

from readmodel import live
from readmodel.streams import OrderListStream, TimelineStream
from shopsite.services import BY_NAME
from tests.factories import Saga
from tests.service.helpers import deliver

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def on_live_loop(coroutine: Any, timeout: float = 5.0) -> Any:
    """Run on the loop live.py sends from: the in-memory layer's queues belong to one loop."""
    return asyncio.run_coroutine_threadsafe(coroutine, live._loop()).result(timeout)


def test_changes_committed_together_are_one_message_to_the_group_every_stream_hears(
        django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(live, "FLUSH_SECONDS", 1.0)  # both batches below commit well within it, however slow
    layer = get_channel_layer()
    channel = on_live_loop(layer.new_channel())
    on_live_loop(layer.group_add(live.GROUP, channel))
    sagas = [Saga() for _ in range(3)]
    with django_capture_on_commit_callbacks(using=BY_NAME["readmodel"].alias, execute=True):
        deliver("readmodel", [s.created() for s in sagas[:2]] + [sagas[0].reserved()])
    with django_capture_on_commit_callbacks(using=BY_NAME["readmodel"].alias, execute=True):
        deliver("readmodel", [sagas[2].created()])  # a second batch within the flush interval

    message = on_live_loop(layer.receive(channel))
    assert message == {"type": live.CHANGED, "orderIds": sorted(s.order_id for s in sagas)}
    with pytest.raises(TimeoutError):  # and nothing else: one message for both batches
        on_live_loop(asyncio.wait_for(layer.receive(channel), 1.5), timeout=5)


class _Recorder:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.reads = 0


def test_a_timeline_stream_reads_only_when_its_own_order_changed():
    stream = TimelineStream()
    stream.order_id = "o-mine"
    recorder = _Recorder()

    async def send_new() -> None:
        recorder.reads += 1

    stream._send_new = send_new  # type: ignore[method-assign]
    asyncio.run(stream.projections_changed({"type": live.CHANGED, "orderIds": ["o-other", "o-third"]}))
    assert recorder.reads == 0
    asyncio.run(stream.projections_changed({"type": live.CHANGED, "orderIds": ["o-other", "o-mine"]}))
    assert recorder.reads == 1


def test_the_order_list_stream_names_the_changed_orders():
    stream = OrderListStream()
    recorder = _Recorder()

    async def send_body(body: bytes, *, more_body: bool = True) -> None:
        recorder.bodies.append(body)

    stream.send_body = send_body  # type: ignore[method-assign]
    asyncio.run(stream.projections_changed({"type": live.CHANGED, "orderIds": ["o-1", "o-2"]}))
    assert recorder.bodies == [b'event: changed\ndata: ["o-1", "o-2"]\n\n']
