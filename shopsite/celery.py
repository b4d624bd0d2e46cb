"""The Celery app: outbox dispatch tasks, the periodic sweep, and a worker
option that runs the chosen services' Kafka consumers inside the worker.

`celery -A shopsite worker --services=orders,inventory` is the one command
operators learn; see shopsite/events/worker.py for the bootstep.
"""

from __future__ import annotations

import os

import click
from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")

app = Celery("shopsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["shopsite.events"])


@setup_logging.connect
def _use_django_logging(**_: object) -> None:
    """Workers log exactly like daphne: Django's LOGGING (JSON on stdout), not Celery's format."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)

app.user_options["worker"].add(
    click.Option(
        ("--services",),
        default="",
        help="Comma-separated services whose Kafka consumers this worker runs "
        "(orders,inventory,payment,shipping,readmodel or 'all'); empty = tasks only.",
    )
)


def _install_worker_steps() -> None:
    from shopsite.events.worker import ServiceConsumersStep

    app.steps["worker"].add(ServiceConsumersStep)


_install_worker_steps()
