import logging

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

log = logging.getLogger("shopsite.migrate")


class Command(BaseCommand):
    help = ("Apply migrations to the default database and every service database "
            "(only the served service's when SHOPSITE_SERVICE is set).")

    def handle(self, *args, **options) -> None:
        # Logged, not printed: the stack runs this and every line it writes is JSON.
        for alias in ["default", *(s.alias for s in settings.SERVED_SERVICES)]:
            call_command("migrate", database=alias, interactive=False, verbosity=max(0, options["verbosity"] - 1))
            log.info("migrated", extra={"db": alias})
