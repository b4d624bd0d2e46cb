"""Bulk row writes on SQL backends without the ORM's per-value query compilation.

Django's bulk_create compiles every value of every row through the query
compiler; for the consumer's few hundred rows per batch that bookkeeping
costs several times the database work. Here one statement is built per
model and column set, each value is prepared by its own field (the same
conversions the ORM applies), and the rows go through the driver's
executemany in list order (new rows on PostgreSQL: COPY, pg_copy.py).
Used through UnitOfWork, which decides per backend; MongoDB keeps the ORM
path.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from django.db import connections
from django.db.models import AutoField, Field, Model

from shopsite.events import pg_copy


def supported(alias: str) -> bool:
    """SQLite and PostgreSQL: plain INSERTs and INSERT ... ON CONFLICT (pk) DO UPDATE."""
    return connections[alias].vendor in ("sqlite", "postgresql")


def insert(alias: str, rows: Sequence[Model], update_fields: Sequence[str] = ()) -> None:
    """INSERT the rows in order; with update_fields, rows whose primary key exists get those fields instead.

    Without update_fields a row that exists fails on the primary key, as the
    ORM's insert would: that is what guards a row two processes create at once.
    """
    if not rows:
        return
    model = type(rows[0])
    connection = connections[alias]
    fields = _columns(model, with_pk=rows[0].pk is not None)
    params = [tuple(f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields) for row in rows]
    if connection.vendor == "postgresql" and not update_fields:
        pg_copy.insert(connection, model._meta.db_table, [f.column for f in fields], params)
        return
    sql = _statement(model, tuple(f.attname for f in fields), tuple(update_fields), alias)
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _columns(model: type[Model], with_pk: bool) -> list[Field]:
    # An auto primary key left empty is assigned by the database (the outbox's id sequence).
    return [f for f in model._meta.concrete_fields if with_pk or not isinstance(f, AutoField)]


@lru_cache(maxsize=128)
def _statement(model: type[Model], attnames: tuple[str, ...], update_fields: tuple[str, ...], alias: str) -> str:
    quote = connections[alias].ops.quote_name
    meta = model._meta
    by_attname = {f.attname: f for f in meta.concrete_fields}
    columns = [by_attname[a].column for a in attnames]
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
           f"VALUES ({', '.join(['%s'] * len(columns))})")
    if update_fields:
        updated = [quote(meta.get_field(f).column) for f in update_fields]
        sql += f" ON CONFLICT ({quote(meta.pk.column)}) DO UPDATE SET " + ", ".join(
            f"{c} = EXCLUDED.{c}" for c in updated)
    return sql
