"""DATABASES for the chosen backend (SHOPSITE_DB): one database per service.

Same aliases and models on every backend; only the connection settings
differ. See docs/architecture.md section 2 and the README's "Databases" section.

Kept free of Django imports: the process supervisor and the test runner use
it before any settings exist. The choices themselves (SHOPSITE_DB,
DATABASE_URL, MONGODB_URI) are read in shopsite/config.py and passed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shopsite.services import SERVICE_ALIASES

ALL_ALIASES: tuple[str, ...] = ("default", *SERVICE_ALIASES)

SQLITE, POSTGRES, MONGODB, MONGOMOCK = "sqlite", "postgres", "mongodb", "mongomock"
BACKENDS: tuple[str, ...] = (SQLITE, POSTGRES, MONGODB, MONGOMOCK)
# Both run django-mongodb-backend; mongomock is the in-process test double (shopsite/testing/).
MONGO_BACKENDS: frozenset[str] = frozenset({MONGODB, MONGOMOCK})

# Seed: "Each microservice has its own MongoDB database", named after the service.
MONGO_DATABASE_NAMES: dict[str, str] = {"default": "shopsite", **{alias: alias for alias in SERVICE_ALIASES}}


def sqlite_databases(var_dir: Path) -> dict[str, dict[str, Any]]:
    var_dir.mkdir(parents=True, exist_ok=True)
    return {
        alias: {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(var_dir / f"{alias}.sqlite3"),
            "OPTIONS": {
                # WAL lets the dashboard read while a consumer writes; IMMEDIATE
                # takes the write lock at BEGIN so two writers queue on the busy
                # timeout instead of failing mid-transaction with "locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            "TEST": {"NAME": None},
        }
        for alias in ALL_ALIASES
    }


def postgres_base_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "shopsite"


def postgres_names(base_name: str) -> dict[str, str]:
    """alias -> database name: `shopsite` for Django's own tables, `shopsite_<alias>` per service."""
    return {alias: base_name if alias == "default" else f"{base_name}_{alias}" for alias in ALL_ALIASES}


# Every process draws its connections from a pool per database (psycopg_pool via Django's
# OPTIONS["pool"]). Persistent per-thread connections (CONN_MAX_AGE) leak under ASGI: Django
# runs each request's sync code in a thread of its own, so every request opened a connection
# per database that stayed open until the garbage collector found it (a web process held 70
# during a burst, and the server's max_connections ran out). Long-lived threads (consumers,
# relay loops) keep the connection they took; request and task threads give it back at the end.
POOL_MIN_SIZE = 0  # a database this process rarely touches (the dashboard's, the health probe's) holds none
POOL_WAIT_SECONDS = 10.0  # a caller waiting longer for a connection gets an error (transient: it retries)
POOL_IDLE_SECONDS = 60.0  # an idle connection beyond min_size is closed after this
# While the server refuses connections the pool retries in the background with a doubling
# delay; giving up early lets the next caller start again at once instead of waiting out
# a long delay after the server is back.
POOL_RECONNECT_SECONDS = 4.0


def postgres_pool(max_size: int, name: str) -> dict[str, Any]:
    """psycopg_pool.ConnectionPool arguments: at most `max_size` connections to one database from one process."""
    return {"name": name, "min_size": POOL_MIN_SIZE, "max_size": max_size, "timeout": POOL_WAIT_SECONDS,
            "max_idle": POOL_IDLE_SECONDS, "reconnect_timeout": POOL_RECONNECT_SECONDS, "num_workers": 1}


def postgres_databases(url: str, pool_size: int = 4, process_name: str = "shopsite") -> dict[str, dict[str, Any]]:
    """Each alias gets its own PostgreSQL database named after the alias, and a pool in each process.

    application_name names the process in pg_stat_activity, so a server's
    connections can be counted per process (`SHOPSITE_PROCESS`).
    """
    parts = urlsplit(url)
    databases: dict[str, dict[str, Any]] = {}
    for alias, name in postgres_names(postgres_base_name(url)).items():
        databases[alias] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": parts.username or "postgres",
            "PASSWORD": parts.password or "",
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": str(parts.port or 5432),
            "CONN_MAX_AGE": 0,  # required with a pool: "closing" gives the connection back to it
            # The pool checks a connection before handing it out: after the server dropped
            # connections (a restart, an outage) no caller gets a dead one.
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {"application_name": process_name[:63],
                        "pool": postgres_pool(pool_size, f"{process_name}:{alias}")},
            # Never the databases `make run` uses: pytest-django creates and drops these.
            "TEST": {"NAME": f"test_{name}"},
        }
    return databases


def mongo_databases(uri: str, engine: str = "django_mongodb_backend") -> dict[str, dict[str, Any]]:
    """Each alias its own Mongo database (seed names) on one deployment given by the URI.

    The URI goes to HOST whole (the backend passes it to MongoClient), so a
    replica set's hosts and options (replicaSet=, w=majority, tls=...) are
    written once, in MONGODB_URI.
    """
    return {
        alias: {
            "ENGINE": engine,
            "HOST": uri,
            "NAME": name,
            "TEST": {"NAME": f"test_{name}"},
        }
        for alias, name in MONGO_DATABASE_NAMES.items()
    }


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def configured_databases(backend: str, var_dir: Path, database_url: str, mongodb_uri: str, *,
                         pool_size: int = 4, process_name: str = "shopsite") -> dict[str, dict[str, Any]]:
    """DATABASES for `backend` (one of BACKENDS; shopsite/config.py validated it)."""
    if backend == SQLITE:
        return sqlite_databases(var_dir)
    if backend == POSTGRES:
        return postgres_databases(database_url, pool_size, process_name)
    if backend == MONGODB:
        return mongo_databases(mongodb_uri)
    # In-process mongomock: same engine and names; the shim swaps the client underneath.
    return mongo_databases("mongodb://mongomock.invalid:27017")
