"""A throwaway copy of the read model's database, for rebuilding it beside the live one.

Same backend and server as the read model's database, another name; the
read model's tables are created from its models (the router only migrates
known aliases, and a scratch database needs no migration history).
Dropped again when the rebuild is done.
"""

from __future__ import annotations

import copy
import contextlib
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.db.utils import load_backend

from readmodel.models import DeadLetter, OrderProjection
from shopsite.events.models import OutboxMessage, ProcessedEvent

SHADOW_ALIAS = "read_model_rebuild"
# Everything the read model's handlers write: projections, dead letters, inbox, outbox.
_MODELS = (OrderProjection, DeadLetter, ProcessedEvent, OutboxMessage)


def _shadow_name(live: dict, vendor: str, tag: str) -> str:
    if vendor == "sqlite":
        return str(Path(settings.VAR_DIR) / f"read_model_rebuild_{tag}.sqlite3")
    return f"{live['NAME']}_rebuild_{tag}"


def _drop(alias: str, vendor: str, entry: dict) -> None:
    name = entry["NAME"]
    connections[alias].close()
    if vendor == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)
    elif vendor == "postgresql":
        from shopsite import pgadmin

        pgadmin.drop(pgadmin.Server.from_settings(entry), [name])
    elif vendor == "mongodb":
        connection = connections[alias]
        connection.ensure_connection()
        connection.connection.drop_database(name)


@contextlib.contextmanager
def shadow_database(live_alias: str, tag: str) -> Iterator[str]:
    """An empty database with the read model's tables, as a Django alias; dropped on exit."""
    entry = copy.deepcopy(connections[live_alias].settings_dict)
    vendor = connections[live_alias].vendor
    entry["NAME"] = _shadow_name(entry, vendor, tag)
    # A connection of this thread only, never added to DATABASES: nothing else in the process
    # (the router, health checks, migrations) should ever see the scratch database.
    connections[SHADOW_ALIAS] = load_backend(entry["ENGINE"]).DatabaseWrapper(entry, SHADOW_ALIAS)
    try:
        _drop(SHADOW_ALIAS, vendor, entry)  # a leftover of an interrupted run
        if vendor == "postgresql":
            from shopsite import pgadmin

            pgadmin.create_missing(pgadmin.Server.from_settings(entry), [entry["NAME"]])
        with connections[SHADOW_ALIAS].schema_editor() as editor:
            for model in _MODELS:
                editor.create_model(model)
        yield SHADOW_ALIAS
    finally:
        try:
            _drop(SHADOW_ALIAS, vendor, entry)
        finally:
            connections[SHADOW_ALIAS].close()
            del connections[SHADOW_ALIAS]
