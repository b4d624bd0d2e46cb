"""Celery tasks for the outbox: publish-now after a commit, and the periodic sweep.

Both take the service's database alias and are routed to that service's
queue (route_task), so only a worker running that service handles them.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from shopsite.events import metrics, relay
from shopsite.jsonlog import log_context
from shopsite.services import BY_ALIAS, task_queue

_PER_SERVICE_TASKS = frozenset({"shopsite.events.tasks.dispatch_outbox", "shopsite.events.tasks.sweep_outbox"})


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> dict[str, str] | None:
    """Celery router (CELERY_TASK_ROUTES): an outbox task goes to its service's queue."""
    if name in _PER_SERVICE_TASKS:
        alias = (args[0] if args else None) or (kwargs or {}).get("alias")
        if alias in BY_ALIAS:
            return {"queue": task_queue(BY_ALIAS[alias])}
    return None


@shared_task(name="shopsite.events.tasks.dispatch_outbox", ignore_result=True)
def dispatch_outbox(alias: str) -> int:
    with log_context(service=BY_ALIAS[alias].name):
        return relay.dispatch_pending(alias)


def publish_soon(alias: str) -> None:
    """After a commit: ask a worker to publish `alias`'s outbox now.

    If Redis is down the rows are still safe in the outbox and the periodic
    sweep publishes them, so a failure here is logged, not raised.
    """
    try:
        dispatch_outbox.delay(alias)
    except Exception:
        logging.getLogger(__name__).warning("could not enqueue outbox dispatch", exc_info=True,
                                            extra={"db": alias})


@shared_task(name="shopsite.events.tasks.sweep_outbox", ignore_result=True)
def sweep_outbox(alias: str) -> int:
    """Catch anything the publish-after-commit path missed (crash, broker down), and measure the backlog.

    The backlog is measured after publishing: what is left is what the
    broker did not take, which is what an operator needs to see grow.
    """
    name = BY_ALIAS[alias].name
    with log_context(service=name):
        published = relay.dispatch_pending(alias)
        count, age = relay.backlog(alias)
    metrics.OUTBOX_BACKLOG.labels(name).set(count)
    metrics.OUTBOX_OLDEST_AGE.labels(name).set(age)
    return published
