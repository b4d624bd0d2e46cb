"""The Celery app: outbox dispatch tasks, the periodic sweep, and a worker
option that runs the chosen services' Kafka consumers inside the worker.

`celery -A shopsite --quiet worker --services=orders,inventory` is the one
command operators learn; see shopsite/events/worker.py for the bootstep.
(`--quiet` drops Celery's text banner, so stdout carries JSON lines only.)
"""

from __future__ import annotations

import logging
import logging.config
import os
from typing import Any

import click
from celery import Celery
from celery.apps import worker as celery_worker_app
from celery.signals import beat_init, celeryd_init, setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")


def _configure_logging() -> None:
    """JSON logging exactly like daphne's (Django's LOGGING); warnings become log lines too."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    logging.captureWarnings(True)


app = Celery("shopsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["shopsite.events"])
app.autodiscover_tasks(["shopsite.events"], related_name="retention")


@setup_logging.connect
def _use_django_logging(**_: object) -> None:
    """Connecting this signal stops Celery from installing its own (text) log handlers."""
    _configure_logging()


@celeryd_init.connect
def _log_json_early(**_: object) -> None:
    # The worker checks its privileges (a SecurityWarning when run as root)
    # right after this signal and before it sets up logging: configure now so
    # that warning comes out as a JSON line, not as text on stderr.
    _configure_logging()


def _say_as_json(msg: str, f: Any = None) -> None:
    """Celery's shutdown notices ("worker: Warm shutdown (MainProcess)"), as log lines.

    Celery writes them with safe_say straight to the real stdout from its
    signal handlers. Logging from a signal handler is safe enough here: the
    handler lock is re-entrant, and a failure must never break the shutdown.
    """
    try:
        logging.getLogger("celery.worker").info(msg.strip())
    except Exception:  # noqa: BLE001 - a lost notice beats an aborted shutdown
        pass


celery_worker_app.safe_say = _say_as_json


@beat_init.connect
def _log_beat_start(sender: Any = None, **_: object) -> None:
    schedule = sorted(app.conf.beat_schedule)
    logging.getLogger("shopsite.beat").info("beat started", extra={"schedule": schedule})


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
