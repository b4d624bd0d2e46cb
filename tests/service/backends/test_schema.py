"""Collections/tables and fields are the seed's (ER_DIAGRAM.md) on every backend.

On MongoDB the documents are read back through pymongo's own API (the
backend's MongoClient: mongomock's under SHOPSITE_DB=mongomock), not through
Django, so what is checked is what another Mongo client would see.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from bson import Decimal128, ObjectId
from django.core.management import call_command
from django.db import connections

from orders.commands import place_order
from shopsite.databases import MONGO_DATABASE_NAMES
from shopsite.services import SERVICE_ALIASES
from tests.factories import Saga
from tests.service.helpers import deliver

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]

SEED_FIELDS = {
    "orders": {"_id", "items", "total", "status", "history", "createdAt", "updatedAt", "correlationId"},
    "orders_projection": {"_id", "createdAt", "currentStatus", "timeline", "updatedAt"},
    "processed_events": {"_id", "consumer", "eventId", "at"},
    "outbox": {"_id", "eventId", "type", "topic", "key", "payload", "createdAt", "dispatched", "dispatchedAt"},
}
# Our documented additions (README, "Databases"): the dashboard's list fields and the relay's retry bookkeeping.
EXTENSIONS = {
    "orders_projection": {"correlationId", "items", "total"},
    "outbox": {"attempts", "lastError", "parkedAt"},
}
WHERE = {"orders": "order_service", "orders_projection": "read_model_service"}


def expected_fields(collection: str) -> set[str]:
    return SEED_FIELDS[collection] | EXTENSIONS.get(collection, set())


def make_one_of_each() -> str:
    """An order (orders + outbox), its projection and processed_events rows."""
    placed = place_order([{"sku": "SKU-1", "qty": 1}], 10)
    saga = Saga(order_id=placed.order.order_id)
    deliver("readmodel", [saga.created()])
    deliver("inventory", [saga.created()])
    return placed.order.order_id


@pytest.mark.backends("mongodb", "mongomock")
def test_mongo_collections_and_fields_follow_the_seed():
    order_id = make_one_of_each()
    client = connections["order_service"].connection  # pymongo's MongoClient (mongomock's in test mode)
    names = {}
    for alias in SERVICE_ALIASES:
        database_name = connections[alias].settings_dict["NAME"]
        assert database_name == f"test_{MONGO_DATABASE_NAMES[alias]}"  # seed names, test_ prefix in tests
        names[alias] = set(client[database_name].list_collection_names())
        assert {"processed_events", "outbox"} <= names[alias], alias  # seed: shared collections
    for collection, alias in WHERE.items():
        assert [a for a in SERVICE_ALIASES if collection in names[a]] == [alias]

    def doc(alias: str, collection: str, query: dict) -> dict:
        found = client[connections[alias].settings_dict["NAME"]][collection].find_one(query)
        assert found is not None, (alias, collection, query)
        assert set(found) == expected_fields(collection), (collection, sorted(found))
        return found

    order = doc("order_service", "orders", {"_id": order_id})
    assert isinstance(order["total"], Decimal128) and isinstance(order["createdAt"], datetime)
    assert order["items"] == [{"sku": "SKU-1", "qty": 1}] and order["history"][0]["type"] == "order.OrderCreated.v1"
    projection = doc("read_model_service", "orders_projection", {"_id": order_id})
    assert projection["currentStatus"] == "CREATED" and isinstance(projection["timeline"], list)
    inbox = doc("read_model_service", "processed_events", {})
    assert inbox["_id"] == f"readmodel:{inbox['eventId']}" and inbox["consumer"] == "readmodel"
    outbox = doc("order_service", "outbox", {"key": order_id})
    assert isinstance(outbox["_id"], ObjectId)  # seed: _id ObjectId
    assert outbox["dispatched"] is False and outbox["dispatchedAt"] is None
    assert outbox["payload"]["eventId"] == outbox["eventId"]
    # The relay's query (pending rows in _id order) has its index.
    indexes = client[connections["order_service"].settings_dict["NAME"]]["outbox"].index_information()
    assert [key for key, _ in indexes["outbox_pending_idx"]["key"]] == ["dispatched", "_id"]


@pytest.mark.backends("sqlite", "postgres")
def test_sql_tables_and_columns_follow_the_seed():
    make_one_of_each()
    for alias in SERVICE_ALIASES:
        connection = connections[alias]
        tables = set(connection.introspection.table_names())
        assert {"processed_events", "outbox"} <= tables, alias
        with connection.cursor() as cursor:
            for table in SEED_FIELDS:
                if table in tables:
                    columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
                    assert columns == expected_fields(table), (alias, table, sorted(columns))
    for table, alias in WHERE.items():
        assert [a for a in SERVICE_ALIASES if table in connections[a].introspection.table_names()] == [alias]


def test_migrations_describe_the_models_on_this_backend():
    """Each backend's migration modules (SQL, or shopsite/mongo/migrations) match the models it loads."""
    call_command("makemigrations", check=True, dry_run=True, verbosity=0)


def test_the_health_check_reaches_every_database_on_this_backend():
    from shopsite.ops import health

    checks = health.checks()
    for alias in connections:
        checks[f"db:{alias}"]()  # raises if the probe does not fit the backend (no SQL cursor on MongoDB)
