"""DATABASES for the chosen backend (SHOPSITE_DB): one database per service.

Same aliases and models on every backend; only the connection settings
differ. See ARCHITECTURE.md section 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shopsite.services import SERVICE_ALIASES

ALL_ALIASES: tuple[str, ...] = ("default", *SERVICE_ALIASES)


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


def postgres_databases(url: str) -> dict[str, dict[str, Any]]:
    """Each alias gets its own PostgreSQL database named after the alias."""
    parts = urlsplit(url)
    base_name = (parts.path or "/shopsite").lstrip("/") or "shopsite"
    databases: dict[str, dict[str, Any]] = {}
    for alias in ALL_ALIASES:
        name = base_name if alias == "default" else f"{base_name}_{alias}"
        databases[alias] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": parts.username or "postgres",
            "PASSWORD": parts.password or "",
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": str(parts.port or 5432),
            "CONN_MAX_AGE": 60,
            "TEST": {"NAME": f"test_{name}"},
        }
    return databases


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def configured_databases(var_dir: Path) -> dict[str, dict[str, Any]]:
    backend = os.environ.get("SHOPSITE_DB", "sqlite").lower()
    if backend == "sqlite":
        return sqlite_databases(var_dir)
    if backend == "postgres":
        return postgres_databases(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shopsite"))
    raise ValueError(f"SHOPSITE_DB={backend!r} is not supported (sqlite | postgres | mongodb)")
