"""The order writer: a web process's concurrent POST /api/orders share transactions.

A transaction costs nearly the same for one order as for twenty (taking the
database's write lock, which on SQLite the other web process and the orders
consumer want too; the commit; the relay's wake-up), and a request thread
with a connection of its own costs more than the insert it does. So a web
process places its orders on one thread of its own, on one long-lived
connection: while that thread commits a group, the orders that arrive wait
in the event loop, and the next transaction takes them all (at most
ORDER_GROUP_MAX). Each request gets the answer it would have got alone
(orders/commands.py, place_orders_together). Under light load a group is
one order and nothing waits.

Only a web server's event loop uses it (shopsite/asgi.py starts it); other
callers place orders in their own thread and transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from django.db import connections

Request = TypeVar("Request")


class GroupWriter(Generic[Request]):
    """Runs `write_together(group)` for what callers `submit`, one group at a time, on its own thread.

    `write_together` answers every request of a group, in order: a result,
    or an exception for that request alone (raised to its caller). `alias`
    is the database it writes: its connection belongs to the writer's thread
    for good, and is dropped only when an error left it unusable.
    """

    def __init__(self, write_together: Callable[[Sequence[Request]], list[Any]], *, max_group: int, alias: str,
                 name: str):
        self._write_together = write_together
        self._max_group = max(1, max_group)
        self._alias = alias
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: deque[tuple[Request, asyncio.Future[Any]]] = deque()
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((request, future))
        if self._drain is None:
            # A context of its own: the task outlives the request that happened to start it,
            # and must carry neither its log fields nor its thread-sensitive context.
            self._drain = loop.create_task(self._write_pending(), context=contextvars.Context())
        return await future

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group = [self._pending.popleft() for _ in range(min(len(self._pending), self._max_group))]
                try:
                    answers = await loop.run_in_executor(self._thread, self._write, [r for r, _ in group])
                except Exception as exc:  # write_together answers each request; this is only a safety net
                    answers = [exc] * len(group)
                for (_, future), answer in zip(group, answers):
                    if future.done():
                        continue  # its caller went away (a client that disconnected); what was written stands
                    if isinstance(answer, BaseException):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self._drain = None

    def close(self) -> None:
        """Finish what was handed to the thread, close its database connections and end it."""
        self._thread.submit(connections.close_all).result()
        self._thread.shutdown()

    def _write(self, group: list[Request]) -> list[Any]:
        try:
            answers = self._write_together(group)
            if len(answers) != len(group):  # a caller without its answer would wait for ever
                raise RuntimeError(f"{len(answers)} answers for {len(group)} requests")
            return answers
        finally:
            connection = connections[self._alias]
            if connection.errors_occurred:
                connection.close_if_unusable_or_obsolete()
