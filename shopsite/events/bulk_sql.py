"""Row reads and writes by key on SQL backends, without the ORM's query compilation.

The consumers' hot path: a batch loads the rows its events touch, looks up
its inbox, and writes rows back in bulk. Through the ORM each of those
statements is compiled anew and every value goes through the query
compiler, which cost several times the database work, both for a batch of
a few hundred events (per value) and for a batch of one (per statement).
Here each statement's text is built once per model and column set, and:

* values are prepared as their field would prepare them (the same
  conversions the ORM applies): through the backend's own adapter directly
  for the field types the services use (text, integers, booleans, aware
  datetimes, JSON), through the field's get_db_prep_save for anything else;
* loaded rows are converted by the converters the query compiler would
  apply (the backend's, then each field's from_db_value) into model
  instances, as the ORM builds them.

Rows to write are model instances, or mappings of attribute name to value
where no instance is needed (the inbox's and outbox's rows, a dozen per
order); new rows on PostgreSQL go through COPY (pg_copy.py). Used through
UnitOfWork, which decides per backend; MongoDB keeps the ORM path.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
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
IN_LIST_SIZE = 500  # keys per statement with an IN (...) list: well inside SQLite's limit on parameters
_cache: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


def supported(alias: str) -> bool:
    """SQLite and PostgreSQL: plain statements, and INSERT ... ON CONFLICT (pk) DO UPDATE."""
    return connections[alias].vendor in ("sqlite", "postgresql")


# --- writes ---------------------------------------------------------------------------------------------------


def insert(alias: str, rows: Sequence[Model], update_fields: Sequence[str] = ()) -> None:
    """INSERT the rows in order; with update_fields, rows whose primary key exists get those fields instead.

    Without update_fields a row that exists fails on the primary key, as the
    ORM's insert would: that is what guards a row two processes create at once.
    """
    if not rows:
        return
    model = type(rows[0])
    # An auto primary key left empty is assigned by the database (the outbox's id sequence).
    fields = [f for f in model._meta.concrete_fields if rows[0].pk is not None or not isinstance(f, AutoField)]
    attnames = tuple(f.attname for f in fields)
    _execute_many(alias, model, _insert_statement(model, attnames, tuple(update_fields), alias), attnames,
                  _read(rows, fields), new_rows=not update_fields)


def insert_values(alias: str, model: type[Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT rows given as {attname: value}, all with the same keys; a column they leave out gets its default.

    An auto primary key left out is assigned by the database, as in `insert`.
    """
    if not rows:
        return
    given = tuple(rows[0])
    defaults = {f.attname: f.get_default() for f in model._meta.concrete_fields
                if f.attname not in given and not isinstance(f, AutoField)}
    attnames, filler = given + tuple(defaults), list(defaults.values())
    _execute_many(alias, model, _insert_statement(model, attnames, (), alias), attnames,
                  [[row[a] for a in given] + filler for row in rows], new_rows=True)


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
    attnames = tuple(f.attname for f in written)
    _execute_many(alias, model, _update_statement(model, attnames[:-1], alias), attnames, _read(rows, written))


def set_fields(alias: str, model: type[Model], pks: Collection[Any], values: Mapping[str, Any]) -> None:
    """Set these rows' fields (by attribute name) to the same values."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    assignments = ", ".join(f"{quote(by_attname[a].column)} = %s" for a in values)
    prepared = [p(v) for p, v in zip(_preparers(model, tuple(values), connection), values.values())]
    with connection.cursor() as cursor:
        for placeholders, keys in _key_chunks(connection, model, pks):
            cursor.execute(f"UPDATE {quote(model._meta.db_table)} SET {assignments} "
                           f"WHERE {_pk_column(model, alias)} IN ({placeholders})", prepared + keys)


def _read(rows: Sequence[Model], fields: Sequence[Field]) -> list[list[Any]]:
    """Each row's field.pre_save(row, True): the attribute itself except for fields that set their value on save."""
    readers: list[Callable[[Model], Any]] = []
    for field in fields:
        if type(field) in _PLAIN or (type(field) is DateTimeField and not (field.auto_now or field.auto_now_add)):
            readers.append(lambda row, attname=field.attname: getattr(row, attname))
        else:
            readers.append(lambda row, field=field: field.pre_save(row, True))
    return [[read(row) for read in readers] for row in rows]


def _execute_many(alias: str, model: type[Model], sql: str, attnames: tuple[str, ...],
                  values: list[list[Any]], *, new_rows: bool = False) -> None:
    """`sql` once per row; rows that are all new (plain INSERTs), on PostgreSQL, through COPY instead."""
    connection = connections[alias]
    prepare = _preparers(model, attnames, connection)
    params = [tuple([p(v) for p, v in zip(prepare, row)]) for row in values]
    if new_rows and connection.vendor == "postgresql":
        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        pg_copy.insert(connection, model._meta.db_table, [by_attname[a].column for a in attnames], params)
        return
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


# --- reads ----------------------------------------------------------------------------------------------------


def load(alias: str, model: type[Model], pks: Collection[Any], *, lock: bool = False) -> list[Model]:
    """The rows with these primary keys as model instances, in key order; with `lock`, SELECT ... FOR UPDATE
    where the backend locks rows (SQLite's IMMEDIATE transaction already holds the whole database).

    What `model.objects.select_for_update().filter(pk__in=pks).order_by("pk")` returns.
    """
    connection = connections[alias]
    select, attnames, columns, converters = _load_plan(model, alias)
    suffix = f" ORDER BY {_pk_column(model, alias)}"
    if lock and connection.features.has_select_for_update:
        suffix += " FOR UPDATE"
    rows: list[Model] = []
    with connection.cursor() as cursor:
        for placeholders, keys in _key_chunks(connection, model, sorted(set(pks))):
            cursor.execute(f"{select} IN ({placeholders}){suffix}", keys)
            for values in cursor.fetchall():
                converted = [_convert(v, column, convert, connection) if convert else v
                             for v, column, convert in zip(values, columns, converters)]
                rows.append(model.from_db(alias, attnames, converted))
    return rows


def existing_pks(alias: str, model: type[Model], pks: Collection[Any]) -> set[Any]:
    """Which of these primary keys have a row."""
    connection = connections[alias]
    pk, table = _pk_column(model, alias), connection.ops.quote_name(model._meta.db_table)
    found: set[Any] = set()
    with connection.cursor() as cursor:
        for placeholders, keys in _key_chunks(connection, model, pks):
            cursor.execute(f"SELECT {pk} FROM {table} WHERE {pk} IN ({placeholders})", keys)
            found.update(row[0] for row in cursor.fetchall())
    return found


def _load_plan(model: type[Model], alias: str) -> tuple[str, list[str], tuple[Any, ...], tuple[list[Any], ...]]:
    """SELECT <every column> FROM <table> WHERE <pk>, the attribute names, each column's expression and its
    converters (the backend's, then the field's from_db_value: what the query compiler applies)."""
    connection = connections[alias]

    def make() -> tuple[str, list[str], tuple[Any, ...], tuple[list[Any], ...]]:
        fields = model._meta.concrete_fields
        columns = tuple(f.get_col(model._meta.db_table) for f in fields)
        converters = tuple(connection.ops.get_db_converters(c) + c.get_db_converters(connection) for c in columns)
        return _select_statement(model, alias), [f.attname for f in fields], columns, converters

    return _per_connection(connection, ("load", model, alias), make)


def _convert(value: Any, column: Any, converters: list[Callable[..., Any]], connection: BaseDatabaseWrapper) -> Any:
    for converter in converters:
        value = converter(value, column, connection)
    return value


# --- keys and values ------------------------------------------------------------------------------------------


def _key_chunks(connection: BaseDatabaseWrapper, model: type[Model],
                pks: Collection[Any]) -> Iterator[tuple[str, list[Any]]]:
    """(placeholders, prepared keys) for each IN (...) list of at most IN_LIST_SIZE keys."""
    (prepare,) = _preparers(model, (model._meta.pk.attname,), connection)
    keys = list(pks)
    for start in range(0, len(keys), IN_LIST_SIZE):
        chunk = [prepare(k) for k in keys[start:start + IN_LIST_SIZE]]
        yield ", ".join(["%s"] * len(chunk)), chunk


def _preparers(model: type[Model], attnames: tuple[str, ...], connection: BaseDatabaseWrapper) -> list[Prepare]:
    def make() -> list[Prepare]:
        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        return [_preparer(by_attname[a], connection) for a in attnames]

    return _per_connection(connection, ("prepare", model, attnames), make)


def _preparer(field: Field, connection: BaseDatabaseWrapper) -> Prepare:
    """What field.get_db_prep_save(value) returns, by the shortest way for the usual values.

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


def _per_connection(connection: BaseDatabaseWrapper, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """make(), kept per connection (preparers and converters call its adapters) and key: a batch of one row
    should not pay for building them."""
    cached = _cache.setdefault(connection, {})
    if key not in cached:
        cached[key] = make()
    return cached[key]


# --- statements -----------------------------------------------------------------------------------------------


def _pk_column(model: type[Model], alias: str) -> str:
    return connections[alias].ops.quote_name(model._meta.pk.column)


@lru_cache(maxsize=128)
def _insert_statement(model: type[Model], attnames: tuple[str, ...], update_fields: tuple[str, ...],
                      alias: str) -> str:
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
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    assignments = ", ".join(f"{quote(by_attname[a].column)} = %s" for a in attnames)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {_pk_column(model, alias)} = %s"


@lru_cache(maxsize=128)
def _select_statement(model: type[Model], alias: str) -> str:
    quote = connections[alias].ops.quote_name
    return (f"SELECT {', '.join(quote(f.column) for f in model._meta.concrete_fields)} "
            f"FROM {quote(model._meta.db_table)} WHERE {_pk_column(model, alias)}")
