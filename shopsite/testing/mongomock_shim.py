"""Run django-mongodb-backend in-process against mongomock (SHOPSITE_DB=mongomock).

No mongod can be installed where the tests run, yet the MongoDB path (models,
migrations, queries, the unit of work's transaction API, handlers) must be
exercised. mongomock (a pure-Python fake of pymongo's API) gets close; this
module fills the gaps that django-mongodb-backend 5.2.x falls into, and
nothing else. Every patch is named after what the backend calls.

Installed from an AppConfig's ready() (shopsite/testing/apps.py) that
settings.py adds only in mongomock mode, so it is in place before the first
connection and never in any other mode.

What this does NOT prove (README, "Databases"): behaviour of several
processes sharing one database (each process gets its own in-memory server),
isolation between concurrent transactions, write conflicts, and anything about
real server performance. Transactions here are snapshot/restore of the whole
fake server: commit and rollback are right for one thread at a time, which is
what the handler tests need (a failed batch must leave nothing behind).
"""

from __future__ import annotations

import copy
import datetime
import decimal
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import bson
import mongomock
from mongomock import aggregate as mongomock_aggregate
from mongomock import helpers as mongomock_helpers
from mongomock.store import ServerStore

# django-mongodb-backend refuses MongoDB < 6.0; mongomock says 5.0.5 by default.
SERVER_VERSION = "7.0.0"

# One fake server per process, shared by every client, like a real server.
# The backend closes and reopens its MongoClient (e.g. when pytest-django
# switches to the test database); a store per client would lose the data.
_SERVER = ServerStore()
_server_lock = threading.RLock()


# --------------------------------------------------------------------------
# sessions and transactions
# --------------------------------------------------------------------------


class FakeSession:
    """Enough of pymongo's ClientSession for the backend's atomic().

    start_transaction() snapshots every collection of the fake server;
    abort_transaction() puts the snapshot back; commit_transaction() drops it.
    """

    def __init__(self) -> None:
        self._snapshot: dict[str, dict[str, tuple[Any, Any, bool]]] | None = None

    @property
    def in_transaction(self) -> bool:
        return self._snapshot is not None

    def start_transaction(self, *args: Any, **kwargs: Any) -> None:
        if self._snapshot is not None:
            raise RuntimeError("transaction already in progress")  # as pymongo's InvalidOperation says
        with _server_lock:
            self._snapshot = {
                db_name: {
                    name: (copy.deepcopy(col._documents), dict(col.indexes), col._is_force_created)
                    for name, col in db._collections.items()
                }
                for db_name, db in _SERVER._databases.items()
            }

    def commit_transaction(self) -> None:
        self._snapshot = None

    def abort_transaction(self) -> None:
        snapshot, self._snapshot = self._snapshot, None
        if snapshot is None:
            return
        with _server_lock:
            for db_name, db in _SERVER._databases.items():
                saved = snapshot.get(db_name, {})
                for name, col in db._collections.items():
                    if name in saved:
                        col._documents, col.indexes, col._is_force_created = saved[name]
                    else:  # created inside the transaction
                        col.drop()

    def end_session(self) -> None:
        self._snapshot = None


# --------------------------------------------------------------------------
# client, database, collection
# --------------------------------------------------------------------------

# The backend passes `session=` to these; mongomock raises NotImplementedError
# for any truthy session. The fake transaction above needs no session per call.
_SESSION_METHODS = frozenset({
    "aggregate", "bulk_write", "count_documents", "create_index", "create_indexes", "delete_many",
    "delete_one", "drop", "drop_index", "drop_indexes", "find", "find_one", "find_one_and_delete",
    "find_one_and_replace", "find_one_and_update", "index_information", "insert_many", "insert_one",
    "list_indexes", "replace_one", "update_many", "update_one",
})


def _without_session(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("session", None)
        with _server_lock:  # mongomock's stores are not safe for concurrent writers
            return method(*args, **kwargs)

    return call


class ShimCollection(mongomock.Collection):
    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        return _without_session(attribute) if name in _SESSION_METHODS else attribute

    def options(self) -> dict[str, Any]:
        # Called by the backend's flush (test teardown) to skip capped collections; none are capped.
        return {}


class ShimDatabase(mongomock.Database):
    def get_collection(self, name: str, codec_options: Any = None, read_preference: Any = None,
                       write_concern: Any = None, read_concern: Any = None) -> ShimCollection:
        collection = self._collection_accesses.get(name)
        if collection is None:
            collection = self._collection_accesses[name] = ShimCollection(
                self, name, write_concern=write_concern, read_concern=read_concern,
                read_preference=read_preference or self.read_preference,
                codec_options=codec_options or self.codec_options, _db_store=self._store)
        return collection

    def create_collection(self, name: str, **kwargs: Any) -> ShimCollection:
        kwargs.pop("session", None)
        super().create_collection(name, **kwargs)
        return self.get_collection(name)

    def drop_collection(self, name_or_collection: Any, session: Any = None) -> None:
        super().drop_collection(name_or_collection)

    def list_collections(self, filter: Any = None, session: Any = None, nameOnly: bool = False,
                         **kwargs: Any) -> Iterator[dict[str, Any]]:
        # Introspection (table_names) reads each collection's name from here.
        for name in self.list_collection_names():
            yield {"name": name, "type": "collection", "options": {}, "info": {"readOnly": False}}

    def command(self, command: Any, **kwargs: Any) -> dict[str, Any]:
        name = command if isinstance(command, str) else next(iter(command))
        if name in ("hello", "isMaster", "ismaster"):
            # Claim a replica set so the backend's feature probe says transactions work:
            # FakeSession gives them commit/rollback semantics for a single thread.
            return {"isWritablePrimary": True, "setName": "mongomock", "maxWireVersion": 21, "ok": 1.0}
        if name == "buildInfo":
            return {"version": SERVER_VERSION, "versionArray": _version_array(), "ok": 1.0}
        return super().command(command, **kwargs)


class ShimClient(mongomock.MongoClient):
    """What the backend's get_new_connection() builds instead of pymongo.MongoClient."""

    def __init__(self, host: Any = None, port: Any = None, **kwargs: Any) -> None:
        for unsupported in ("driver", "username", "password", "authSource", "replicaSet"):
            kwargs.pop(unsupported, None)  # meaningless for an in-process fake
        super().__init__(host=host, port=port, _store=_SERVER, **kwargs)

    def get_database(self, name: str | None = None, codec_options: Any = None, read_preference: Any = None,
                     write_concern: Any = None, read_concern: Any = None) -> ShimDatabase:
        if name is None:
            return super().get_database(None)  # type: ignore[return-value]
        database = self._database_accesses.get(name)
        if database is None:
            database = self._database_accesses[name] = ShimDatabase(
                self, name, read_preference=read_preference or self.read_preference,
                codec_options=codec_options or self.codec_options, _store=self._store[name],
                read_concern=read_concern)
        return database

    def server_info(self) -> dict[str, Any]:
        return {**super().server_info(), "version": SERVER_VERSION, "versionArray": _version_array()}

    def start_session(self, *args: Any, **kwargs: Any) -> FakeSession:
        return FakeSession()

    @property
    def admin(self) -> ShimDatabase:
        return self.get_database("admin")


def _version_array() -> list[int]:
    return [int(part) for part in SERVER_VERSION.split(".")] + [0]


def _collection(database: ShimDatabase, name: str, **kwargs: Any) -> ShimCollection:
    """Stands in for pymongo.collection.Collection(database, name), which needs a real Database."""
    return database.get_collection(name, **kwargs)


# --------------------------------------------------------------------------
# aggregation expressions mongomock lacks
# --------------------------------------------------------------------------


def _bson_type(value: Any) -> str:
    """The name MongoDB's $type expression gives a value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, bson.Int64):
        return "long"
    if isinstance(value, int):
        return "int" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, (decimal.Decimal, bson.Decimal128)):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime.datetime):
        return "date"
    if isinstance(value, bson.ObjectId):
        return "objectId"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (bytes, bson.Binary)):
        return "binData"
    raise NotImplementedError(f"$type of {type(value).__name__} is not mapped in the mongomock shim")


_original_type_operator = mongomock_aggregate._Parser._handle_type_operator


def _handle_type_operator(self: Any, operator: str, values: Any) -> Any:
    # The backend's isnull lookup asks {"$eq": [{"$type": field}, "missing"]}.
    if operator == "$type":
        try:
            return _bson_type(self.parse(values))
        except KeyError:
            return "missing"
    # The backend reads fields whose names need quoting (e.g. "$"-prefixed) with $getField.
    if operator == "$getField":
        spec = values if isinstance(values, dict) else {"field": values}
        source = self.parse(spec.get("input", "$$CURRENT"))
        field = self.parse(spec["field"])
        if not isinstance(source, dict) or field not in source:
            raise KeyError(field)  # "missing", as mongomock models it
        return source[field]
    return _original_type_operator(self, operator, values)


_original_lookup_stage = mongomock_aggregate._handle_lookup_stage


def _substitute_vars(node: Any, variables: dict[str, Any]) -> Any:
    """Replace "$$name" references to $lookup's `let` variables by their values."""
    if isinstance(node, str) and node.startswith("$$"):
        name, _, rest = node[2:].partition(".")
        if name in variables:
            value = variables[name]
            for part in filter(None, rest.split(".")):
                value = value.get(part) if isinstance(value, dict) else None
            return {"$literal": value}
        return node
    if isinstance(node, dict):
        return {key: _substitute_vars(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute_vars(value, variables) for value in node]
    return node


def _handle_lookup_stage(in_collection: list[dict[str, Any]], database: Any, options: dict[str, Any]) -> Any:
    """$lookup with `pipeline` (and optional `let`, localField/foreignField): joins, e.g. auth's
    permissions by content type. mongomock implements only the plain localField/foreignField form."""
    if "pipeline" not in options:
        return _original_lookup_stage(in_collection, database, options)
    foreign = database.get_collection(options["from"])
    for doc in in_collection:
        matches = list(foreign.find())
        if "localField" in options:
            try:
                local = mongomock_helpers.get_value_by_dot(doc, options["localField"])
            except KeyError:
                local = None
            wanted = local if isinstance(local, list) else [local]
            matches = [m for m in matches if m.get(options["foreignField"]) in wanted]
        variables = {name: mongomock_aggregate._Parser(doc).parse(expression)
                     for name, expression in options.get("let", {}).items()}
        pipeline = _substitute_vars(options["pipeline"], variables)
        doc[options["as"]] = list(mongomock_aggregate.process_pipeline(matches, database, pipeline, None))
    return in_collection


def _handle_unset_stage(in_collection: list[dict[str, Any]], database: Any, options: Any) -> Any:
    """$unset (the backend drops helper fields after a GROUP BY with it): a $project excluding them."""
    fields = [options] if isinstance(options, str) else list(options)
    return mongomock_aggregate._handle_project_stage(in_collection, database, {f: 0 for f in fields})


# --------------------------------------------------------------------------
# installation
# --------------------------------------------------------------------------

_installed = False


def install() -> None:
    """Point django-mongodb-backend at mongomock. Idempotent; for SHOPSITE_DB=mongomock only."""
    global _installed
    if _installed:
        return
    from django_mongodb_backend import base

    mongomock.SERVER_VERSION = SERVER_VERSION
    base.MongoClient = ShimClient  # get_new_connection() builds the client through this name
    base.Collection = _collection  # get_collection() wraps the database through this name
    for operator in ("$type", "$getField"):
        if operator not in mongomock_aggregate.type_operators:
            mongomock_aggregate.type_operators.append(operator)
    mongomock_aggregate._Parser._handle_type_operator = _handle_type_operator
    mongomock_aggregate._PIPELINE_HANDLERS["$lookup"] = _handle_lookup_stage
    mongomock_aggregate._PIPELINE_HANDLERS["$unset"] = _handle_unset_stage
    _installed = True


def reset() -> None:
    """Forget every database of the fake server (a fresh 'mongod')."""
    with _server_lock:
        _SERVER._databases.clear()
