"""PostgreSQL databases per stack.

A stack built in code (tests, bench) gets databases of its own, as it gets a
var dir of its own: fresh ``test_shopsite_stack_<pid>_<n>*`` databases,
created by ``manage.py migrate_all`` and dropped when the stack stops.
``make run`` keeps its data in DATABASE_URL's databases and drops nothing.
"""

from __future__ import annotations

import itertools
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from shopsite import config, databases, pgadmin  # Django-free

# Prefix of the databases a code-built stack creates (tests/run_backends.py sweeps leftovers).
STACK_DATABASE_PREFIX = "test_shopsite_stack_"

_stack_numbers = itertools.count(1)


class StackDatabases:
    def __init__(self, environ: Mapping[str, str], isolated: bool):
        self._switches = config.from_environ(environ)
        self.backend = self._switches.database_backend
        self._isolated = isolated
        self.env: dict[str, str] = {}  # what the children's environment must override
        self.owned: list[str] = []  # dropped by drop()

    def prepare(self) -> None:
        """Choose this stack's databases (creating them is migrate_all's job)."""
        if self.backend == databases.MONGOMOCK:
            # Each process would get its own in-memory server: the services could not see each other.
            raise RuntimeError("SHOPSITE_DB=mongomock is an in-process test mode; a stack of processes "
                               "needs sqlite, postgres or mongodb")
        if self.backend != databases.POSTGRES or not self._isolated:
            return
        if not self.env:
            url = self._switches.database_url
            base = f"{STACK_DATABASE_PREFIX}{os.getpid()}_{next(_stack_numbers)}"
            parts = urllib.parse.urlsplit(url)
            self.env = {"DATABASE_URL": urllib.parse.urlunsplit(parts._replace(path=f"/{base}"))}
        base = databases.postgres_base_name(self.env["DATABASE_URL"])
        # Recorded before migrate_all creates them: a start that fails half way still drops them.
        self.owned = list(databases.postgres_names(base).values())

    def drop(self) -> None:
        if not self.owned:
            return
        pgadmin.drop(pgadmin.Server.from_url(self.env["DATABASE_URL"]), self.owned)
        self.owned = []

    def describe(self, env: Mapping[str, str], var_dir: Path) -> str:
        switches = config.from_environ(env)
        if self.backend == databases.POSTGRES:
            return f"postgres {databases.redact(switches.database_url)} (one database per service)"
        if self.backend == databases.MONGODB:
            return f"mongodb {databases.redact(switches.mongodb_uri)}"
        return f"sqlite files in {var_dir}"
