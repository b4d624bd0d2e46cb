"""Tell browsers that projections changed, through the Channels layer.

Called from consumer threads after the read model's transaction committed.
Sends are fire-and-forget on one background event loop per process, so a
slow or absent Redis never slows the consumer, and the batches committed
within FLUSH_SECONDS become one message, to one group every stream listens
to: each stream picks out the orders it shows. (A message per changed order
cost the read model's worker a sixth of its CPU in Redis writes under load.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Iterable

from channels.layers import get_channel_layer

from shopsite.events.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

GROUP = "projections"
# The message's type: Channels calls the streams' `projections_changed` with it.
CHANGED = "projections.changed"


# Changes a person watching could not tell apart go out as one message.
FLUSH_SECONDS = 0.05

_pending: weakref.WeakKeyDictionary[UnitOfWork, set[str]] = weakref.WeakKeyDictionary()
_waiting: set[str] = set()  # committed changes not sent yet
_waiting_lock = threading.Lock()


def order_changed(uow: UnitOfWork, order_id: str) -> None:
    """Announce `order_id` once `uow` commits (once per order, however many events it got)."""
    orders_changed(uow, [order_id])


def orders_changed(uow: UnitOfWork, order_ids: Iterable[str]) -> None:
    """Announce these orders once `uow` commits, together with any others changed in it."""
    ids = _pending.get(uow)
    if ids is None:
        ids = _pending[uow] = set()
        uow.on_commit(lambda: announce(ids))
    ids.update(order_ids)


def announce(order_ids: Iterable[str]) -> None:
    """Tell the streams about these orders within FLUSH_SECONDS, together with whatever else changed meanwhile.

    Only the first change after a message wakes the sending loop: under load
    the consumer commits many small batches a second, and waking the loop and
    sending for each cost the read model's worker more than its own work.
    """
    with _waiting_lock:
        wake = not _waiting
        _waiting.update(order_ids)
        wake = wake and bool(_waiting)
    if wake:
        loop = _loop()
        loop.call_soon_threadsafe(loop.call_later, FLUSH_SECONDS, _flush)


def _flush() -> None:
    with _waiting_lock:
        ids = sorted(_waiting)
        _waiting.clear()
    asyncio.ensure_future(_send(ids))


async def _send(order_ids: list[str]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(GROUP, {"type": CHANGED, "orderIds": order_ids})
    except Exception:  # browsers miss a live update; the page is still right on its next load
        log.warning("live update not delivered", exc_info=True)


_loop_lock = threading.Lock()
_event_loop: asyncio.AbstractEventLoop | None = None


def _loop() -> asyncio.AbstractEventLoop:
    global _event_loop
    with _loop_lock:
        if _event_loop is None:
            _event_loop = asyncio.new_event_loop()
            threading.Thread(target=_event_loop.run_forever, name="live-updates", daemon=True).start()
        return _event_loop
