"""Celery tasks for the outbox: publish-now after a commit, and the periodic sweep."""

from __future__ import annotations

import logging

from celery import shared_task

from shopsite.events import metrics, relay
from shopsite.services import BY_ALIAS, SERVICE_ALIASES


@shared_task(name="shopsite.events.tasks.dispatch_outbox", ignore_result=True)
def dispatch_outbox(alias: str) -> int:
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


@shared_task(name="shopsite.events.tasks.sweep_outboxes", ignore_result=True)
def sweep_outboxes() -> int:
    """Catch anything the publish-after-commit path missed (crash, broker down)."""
    published = 0
    for alias in SERVICE_ALIASES:
        published += relay.dispatch_pending(alias)
        count, age = relay.backlog(alias)
        metrics.OUTBOX_BACKLOG.labels(BY_ALIAS[alias].name).set(count)
        metrics.OUTBOX_OLDEST_AGE.labels(BY_ALIAS[alias].name).set(age)
    return published
