"""The outbox's periodic sweep, a safety net behind the relay loops.

Publishing after a commit is not a task: the commit wakes the relay loop
(outbox_signal, relay_loop). The sweep takes the service's database alias
and is routed to that service's queue (route_task), so only a worker
running that service handles it.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from shopsite.events import metrics, outbox_signal, relay
from shopsite.jsonlog import log_context
from shopsite.services import BY_ALIAS, task_queue

_PER_SERVICE_TASKS = frozenset({"shopsite.events.tasks.sweep_outbox"})


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> dict[str, str] | None:
    """Celery router (CELERY_TASK_ROUTES): an outbox task goes to its service's queue."""
    if name in _PER_SERVICE_TASKS:
        alias = (args[0] if args else None) or (kwargs or {}).get("alias")
        if alias in BY_ALIAS:
            return {"queue": task_queue(BY_ALIAS[alias])}
    return None


def publish_soon(alias: str) -> None:
    """Wake `alias`'s relay now (for rows written outside a unit of work, e.g. the admin).

    A unit of work that wrote outbox rows does this itself on commit.
    """
    outbox_signal.announce(alias)


@shared_task(name="shopsite.events.tasks.sweep_outbox", ignore_result=True)
def sweep_outbox(alias: str) -> int:
    """Catch anything the publish-after-commit path missed (crash, broker down), and measure the backlog.

    The backlog is measured after publishing: what is left is what the
    broker did not take, which is what an operator needs to see grow.
    """
    name = BY_ALIAS[alias].name
    with log_context(service=name):
        if outbox_signal.relayed_here(alias):
            outbox_signal.announce(alias)  # this process's loop relays it: a nudge is enough
            published = 0
        else:
            published = relay.dispatch_pending(alias)
        count, age = relay.backlog(alias)
    metrics.OUTBOX_BACKLOG.labels(name).set(count)
    metrics.OUTBOX_OLDEST_AGE.labels(name).set(age)
    return published
