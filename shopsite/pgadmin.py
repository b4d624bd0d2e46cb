"""Creating and dropping the per-service PostgreSQL databases.

Django's migrate needs the databases to exist; a fresh server has none.
CREATE/DROP DATABASE cannot run inside a transaction, so these use their own
autocommit connection to the server's maintenance database `postgres`.
Free of Django imports: the process supervisor drops its throwaway
databases with it after its processes have stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAINTENANCE_DB = "postgres"


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""

    @classmethod
    def from_url(cls, url: str) -> Server:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres",
                   parts.password or "")

    @classmethod
    def from_settings(cls, entry: dict[str, Any]) -> Server:
        """From one DATABASES entry (HOST, PORT, USER, PASSWORD)."""
        return cls(entry.get("HOST") or "127.0.0.1", int(entry.get("PORT") or 5432),
                   entry.get("USER") or "postgres", entry.get("PASSWORD") or "")


def _connect(server: Server) -> Any:
    import psycopg  # local: only the Postgres paths need it

    return psycopg.connect(host=server.host, port=server.port, user=server.user, password=server.password,
                           dbname=MAINTENANCE_DB, autocommit=True, connect_timeout=5)


def existing(server: Server, prefix: str = "") -> list[str]:
    """Database names on the server starting with `prefix`."""
    with _connect(server) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY datname",
                            (prefix,)).fetchall()
    return [r[0] for r in rows]


def create_missing(server: Server, names: Iterable[str]) -> list[str]:
    """CREATE DATABASE each name that does not exist yet; returns the ones created."""
    from psycopg import errors, sql

    created = []
    with _connect(server) as conn:
        present = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
        for name in names:
            if name in present:
                continue
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except errors.DuplicateDatabase:
                continue  # another process (a parallel migrate) created it first
            created.append(name)
    return created


def drop(server: Server, names: Iterable[str]) -> None:
    """DROP DATABASE ... WITH (FORCE): ends leftover sessions (a killed worker's) first."""
    from psycopg import sql

    with _connect(server) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
