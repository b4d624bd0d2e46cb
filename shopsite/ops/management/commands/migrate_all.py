from __future__ import annotations

import io
import logging
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

log = logging.getLogger("shopsite.migrate")


class Command(BaseCommand):
    help = ("Create missing databases, then apply migrations to the default database and every service "
            "database (only the served service's when SHOPSITE_SERVICE is set).")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = max(0, options["verbosity"] - 1)
        # Logged, not printed: the stack runs this and every line it writes is JSON.
        created = io.StringIO()
        call_command("create_databases", verbosity=verbosity, stdout=created)
        for line in created.getvalue().splitlines():
            log.info(line.strip(), extra={"step": "create_databases"})
        for alias in ["default", *(s.alias for s in settings.SERVED_SERVICES)]:
            call_command("migrate", database=alias, interactive=False, verbosity=verbosity)
            log.info("migrated", extra={"db": alias})
