from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from shopsite import pgadmin
from shopsite.databases import ALL_ALIASES


class Command(BaseCommand):
    help = ("Create each alias's database if it does not exist (PostgreSQL). "
            "SQLite creates its files and MongoDB its databases on first use, so there is nothing to do.")

    def handle(self, *args: Any, **options: Any) -> None:
        entries = [settings.DATABASES[alias] for alias in ALL_ALIASES]
        postgres = [e for e in entries if e["ENGINE"] == "django.db.backends.postgresql"]
        if not postgres:
            self.stdout.write("nothing to create on this backend")
            return
        servers: dict[pgadmin.Server, list[str]] = {}
        for entry in postgres:
            servers.setdefault(pgadmin.Server.from_settings(entry), []).append(entry["NAME"])
        for server, names in servers.items():
            created = pgadmin.create_missing(server, names)
            for name in names:
                self.stdout.write(f"{'created' if name in created else 'exists '} {name} on {server.host}:{server.port}")
