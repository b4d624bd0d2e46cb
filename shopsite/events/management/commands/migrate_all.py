from django.core.management import call_command
from django.core.management.base import BaseCommand

from shopsite.databases import ALL_ALIASES


class Command(BaseCommand):
    help = "Apply migrations to the default database and every service database."

    def handle(self, *args, **options) -> None:
        for alias in ALL_ALIASES:
            call_command("migrate", database=alias, interactive=False, verbosity=max(0, options["verbosity"] - 1))
            self.stdout.write(f"migrated {alias}")
