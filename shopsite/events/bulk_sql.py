"""Bulk row writes on SQL backends without the ORM's per-value query compilation.

Django's bulk_create compiles every value of every row through the query
compiler; for the consumer's few hundred rows per batch that bookkeeping
costs several times the database work. Here one statement is built per
model and column set, and the rows go through the driver's executemany in
list order (new rows on PostgreSQL through COPY: pg_copy.py). Each value is
prepared the way its field would (the same conversions the ORM applies): through the backend's own adapter directly
for the field types the services use (text, integers, booleans, aware
datetimes, JSON), through the field's get_db_prep_save for anything else,
which measured at a third of a consumer's CPU when done for every value.
Used through UnitOfWork, which decides per backend; MongoDB keeps the ORM path.

Rows are model instances (`insert`) or, where no instance is needed,
mappings of attribute name to value (`insert_values`: the inbox's and the
outbox's rows, a dozen per order, skip building a model each).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (AutoField, BigAutoField, BooleanField, CharField, DateTimeField, Field, IntegerField,
                              JSONField, Model, TextField)

from shopsite.events import pg_copy

Prepare = Callable[[Any], Any]
# Field classes whose value is the attribute itself, and which the backend takes as it is when of the usual type.
_TEXT = (CharField, TextField)
_INTEGER = (IntegerField, BooleanField, BigAutoField)
_PLAIN = (*_TEXT, *_INTEGER, JSONField)
_cache: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()
IN_LIST_SIZE = 500  # keys per SELECT ... IN (...): well inside SQLite's limit on parameters


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
    fields = _columns(model, with_pk=rows[0].pk is not None)
    read = [_reader(f) for f in fields]
    _write(alias, model, tuple(f.attname for f in fields), [[r(row) for r in read] for row in rows], update_fields)


def update(alias: str, rows: Sequence[Model], fields: Sequence[str]) -> None:
    """Write `fields` of rows that exist, in order.

    SQLite: an UPDATE by primary key per row through executemany, so only
    those columns are prepared (not, say, an order's items re-encoded for
    every history entry). PostgreSQL: one INSERT ... ON CONFLICT (pk) DO
    UPDATE of those fields, one statement instead of a round trip per row.
    """
    if not rows:
        return
    if connections[alias].vendor != "sqlite":
        insert(alias, rows, update_fields=fields)
        return
    model = type(rows[0])
    by_name = {f.name: f for f in model._meta.concrete_fields}
    written = [by_name[f] for f in fields] + [model._meta.pk]
    read = [_reader(f) for f in written]
    _write(alias, model, tuple(f.attname for f in written), [[r(row) for r in read] for row in rows], (),
           _update_statement(model, tuple(f.attname for f in written[:-1]), alias))


def insert_values(alias: str, model: type[Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT rows given as {attname: value}, all with the same keys; a column they leave out gets its default.

    An auto primary key left out is assigned by the database, as in `insert`.
    """
    if not rows:
        return
    given = tuple(rows[0])
    defaults = {f.attname: f.get_default() for f in model._meta.concrete_fields
                if f.attname not in given and not isinstance(f, AutoField)}
    filler = list(defaults.values())
    _write(alias, model, given + tuple(defaults), [[row[a] for a in given] + filler for row in rows], ())


def _write(alias: str, model: type[Model], attnames: tuple[str, ...], values: list[list[Any]],
           update_fields: Sequence[str], sql: str | None = None) -> None:
    connection = connections[alias]
    prepare = _preparers(model, attnames, connection)
    params = [tuple([p(v) for p, v in zip(prepare, row)]) for row in values]
    if connection.vendor == "postgresql" and not update_fields and sql is None:
        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        pg_copy.insert(connection, model._meta.db_table, [by_attname[a].column for a in attnames], params)
        return
    with connection.cursor() as cursor:
        cursor.executemany(sql or _statement(model, attnames, tuple(update_fields), alias), params)


def _columns(model: type[Model], with_pk: bool) -> list[Field]:
    # An auto primary key left empty is assigned by the database (the outbox's id sequence).
    return [f for f in model._meta.concrete_fields if with_pk or not isinstance(f, AutoField)]


def _reader(field: Field) -> Callable[[Model], Any]:
    """field.pre_save(row, True), which is the attribute itself except for fields that set their value on save."""
    if type(field) in _PLAIN or (type(field) is DateTimeField and not (field.auto_now or field.auto_now_add)):
        attname = field.attname
        return lambda row: getattr(row, attname)
    return lambda row: field.pre_save(row, True)


def _preparers(model: type[Model], attnames: tuple[str, ...], connection: BaseDatabaseWrapper) -> list[Prepare]:
    def make() -> list[Prepare]:
        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        return [_preparer(by_attname[a], connection) for a in attnames]

    return _per_connection(connection, ("prepare", model, attnames), make)


def _per_connection(connection: BaseDatabaseWrapper, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """make(), kept per connection (preparers and converters call its adapters) and key: a batch of one row
    should not pay for building them."""
    cached = _cache.setdefault(connection, {})
    if key not in cached:
        cached[key] = make()
    return cached[key]


def _preparer(field: Field, connection: BaseDatabaseWrapper) -> Prepare:
    """What field.get_db_prep_save(field.pre_save(row)) returns, by the shortest way for the usual values.

    Exact field classes only: a subclass may convert differently. A value of
    another type than the usual one (a lazy string, a naive datetime, an
    expression) takes the field's own path, warnings and errors included.
    """

    def orm(value: Any) -> Any:
        return field.get_db_prep_save(value, connection)

    kind = type(field)
    if kind in _TEXT:
        return lambda v: v if v is None or v.__class__ is str else orm(v)
    if kind in _INTEGER:
        return lambda v: v if v.__class__ is int or v.__class__ is bool else orm(v)
    if kind is DateTimeField and not (field.auto_now or field.auto_now_add):
        adapt_datetime = _datetime_adapter(connection)
        return lambda v: adapt_datetime(v) if v is None or (
            v.__class__ is datetime and v.tzinfo is not None) else orm(v)
    if kind is JSONField:
        adapt_json, encoder = connection.ops.adapt_json_value, field.encoder
        return lambda v: None if v is None else adapt_json(v, encoder) if v.__class__ in (dict, list) else orm(v)
    return orm


def _datetime_adapter(connection: BaseDatabaseWrapper) -> Prepare:
    """The backend's adapter of aware datetimes; on SQLite its two steps written out (a fifth of its cost)."""
    if connection.vendor == "sqlite" and settings.USE_TZ:
        tz = connection.timezone
        # DatabaseOperations.adapt_datetimefield_value: make_naive in the connection's zone, then str().
        return lambda v: None if v is None else str(v.astimezone(tz).replace(tzinfo=None))
    return connection.ops.adapt_datetimefield_value


def load(alias: str, model: type[Model], pks: Collection[Any], *, lock: bool = False) -> list[Model]:
    """The rows with these primary keys as model instances, in key order; with `lock`, SELECT ... FOR UPDATE
    where the backend locks rows (SQLite's IMMEDIATE transaction already holds the whole database).

    What `model.objects.select_for_update().filter(pk__in=pks).order_by("pk")` returns, converted by the same
    converters (the backend's and each field's from_db_value), without compiling the query each time: a
    consumer batch of one or two events spent more on that than on its own work.
    """
    connection = connections[alias]
    select, attnames, columns, converters = _load_plan(model, alias)
    (prepare,) = _preparers(model, (model._meta.pk.attname,), connection)
    keys = sorted(set(pks))
    suffix = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    rows: list[Model] = []
    with connection.cursor() as cursor:
        for start in range(0, len(keys), IN_LIST_SIZE):
            chunk = [prepare(k) for k in keys[start:start + IN_LIST_SIZE]]
            cursor.execute(f"{select} IN ({', '.join(['%s'] * len(chunk))}) ORDER BY {_pk_column(model, alias)}"
                           f"{suffix}", chunk)
            for values in cursor.fetchall():
                converted = [_convert(v, column, convert, connection) if convert else v
                             for v, column, convert in zip(values, columns, converters)]
                rows.append(model.from_db(alias, attnames, converted))
    return rows


def _convert(value: Any, column: Any, converters: list[Callable[..., Any]], connection: BaseDatabaseWrapper) -> Any:
    for converter in converters:
        value = converter(value, column, connection)
    return value


def _load_plan(model: type[Model], alias: str) -> tuple[str, list[str], tuple[Any, ...], tuple[list[Any], ...]]:
    """SELECT <every column> FROM <table> WHERE <pk>, the attribute names, each column's expression and its
    converters (the backend's, then the field's from_db_value: what the query compiler applies)."""
    connection = connections[alias]

    def make() -> tuple[str, list[str], tuple[Any, ...], tuple[list[Any], ...]]:
        fields = model._meta.concrete_fields
        columns = tuple(f.get_col(model._meta.db_table) for f in fields)
        converters = tuple(connection.ops.get_db_converters(c) + c.get_db_converters(connection) for c in columns)
        return _select(model, alias), [f.attname for f in fields], columns, converters

    return _per_connection(connection, ("load", model, alias), make)


@lru_cache(maxsize=128)
def _select(model: type[Model], alias: str) -> str:
    quote = connections[alias].ops.quote_name
    return (f"SELECT {', '.join(quote(f.column) for f in model._meta.concrete_fields)} "
            f"FROM {quote(model._meta.db_table)} WHERE {_pk_column(model, alias)}")


def _pk_column(model: type[Model], alias: str) -> str:
    return connections[alias].ops.quote_name(model._meta.pk.column)


def set_fields(alias: str, model: type[Model], pks: Collection[Any], values: Mapping[str, Any]) -> None:
    """UPDATE these rows' fields (by attribute name) to the same values: one plain UPDATE per IN_LIST_SIZE keys."""
    connection = connections[alias]
    meta = model._meta
    by_attname = {f.attname: f for f in meta.concrete_fields}
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(by_attname[a].column)} = %s" for a in values)
    prepared = [_preparer(by_attname[a], connection)(v) for a, v in values.items()]
    (prepare,) = _preparers(model, (meta.pk.attname,), connection)
    keys = list(pks)
    with connection.cursor() as cursor:
        for start in range(0, len(keys), IN_LIST_SIZE):
            chunk = [prepare(k) for k in keys[start:start + IN_LIST_SIZE]]
            cursor.execute(f"UPDATE {quote(meta.db_table)} SET {assignments} "
                           f"WHERE {_pk_column(model, alias)} IN ({', '.join(['%s'] * len(chunk))})", prepared + chunk)


def existing_pks(alias: str, model: type[Model], pks: Collection[Any]) -> set[Any]:
    """Which of these primary keys have a row: one plain SELECT per IN_LIST_SIZE keys, no query compilation."""
    connection = connections[alias]
    meta = model._meta
    (prepare,) = _preparers(model, (meta.pk.attname,), connection)
    quote = connection.ops.quote_name
    found: set[Any] = set()
    keys = list(pks)
    with connection.cursor() as cursor:
        for start in range(0, len(keys), IN_LIST_SIZE):
            chunk = [prepare(k) for k in keys[start:start + IN_LIST_SIZE]]
            cursor.execute(f"SELECT {quote(meta.pk.column)} FROM {quote(meta.db_table)} "
                           f"WHERE {quote(meta.pk.column)} IN ({', '.join(['%s'] * len(chunk))})", chunk)
            found.update(row[0] for row in cursor.fetchall())
    return found


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


@lru_cache(maxsize=128)
def _update_statement(model: type[Model], attnames: tuple[str, ...], alias: str) -> str:
    quote = connections[alias].ops.quote_name
    meta = model._meta
    by_attname = {f.attname: f for f in meta.concrete_fields}
    assignments = ", ".join(f"{quote(by_attname[a].column)} = %s" for a in attnames)
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
