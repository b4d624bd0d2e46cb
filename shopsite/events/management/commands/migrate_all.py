from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from shopsite.databases import ALL_ALIASES


class Command(BaseCommand):
    help = "Create missing databases, then apply migrations to the default database and every service database."

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = max(0, options["verbosity"] - 1)
        call_command("create_databases", verbosity=verbosity, stdout=self.stdout)
        for alias in ALL_ALIASES:
            call_command("migrate", database=alias, interactive=False, verbosity=verbosity)
            self.stdout.write(f"migrated {alias}")
