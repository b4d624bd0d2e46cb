"""Bulk SQL writes store exactly what the ORM would, whichever way a value is prepared."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.utils.functional import lazy

from payment.models import Payment
from readmodel.models import OrderProjection
from shopsite.events import bulk_sql
from shopsite.events.models import OutboxMessage, ProcessedEvent
from shopsite.events.unit_of_work import unit_of_work

pytestmark = [pytest.mark.backends("sqlite", "postgres"), pytest.mark.django_db]

AT = datetime(2026, 11, 24, 12, 30, 1, 250000, tzinfo=timezone.utc)
AT_ELSEWHERE = datetime(2026, 11, 24, 13, 30, 1, tzinfo=timezone(timedelta(hours=1)))  # 12:30:01 UTC
lazy_text = lazy(lambda: "made lazily", str)


def stored(alias: str, model: type, pk: Any) -> tuple:
    """The row as the database holds it, every column, read without the ORM's conversions."""
    table, column = model._meta.db_table, model._meta.pk.column
    quote = connections[alias].ops.quote_name
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT * FROM {quote(table)} WHERE {quote(column)} = %s", [pk])
        return cursor.fetchone()


def projection(order_id: str, **changes: Any) -> OrderProjection:
    return OrderProjection(**{"order_id": order_id, "created_at": AT, "current_status": "CREATED",
                              "timeline": [{"type": "t", "at": "x", "n": 1.5}], "updated_at": AT_ELSEWHERE,
                              "correlation_id": "c", "items": [{"sku": "SKU-1", "qty": 2}],
                              "total": Decimal("19.99"), **changes})


@pytest.mark.parametrize("changes", [{}, {"correlation_id": lazy_text()}, {"total": 7}, {"timeline": []}])
def test_an_inserted_row_is_stored_as_the_orm_stores_it(changes):
    alias = "read_model_service"
    projection("orm", **changes).save(using=alias, force_insert=True)
    bulk_sql.insert(alias, [projection("bulk", **changes)])
    assert stored(alias, OrderProjection, "bulk")[1:] == stored(alias, OrderProjection, "orm")[1:]


def test_a_naive_datetime_takes_the_fields_own_path_warning_included():
    alias = "read_model_service"
    naive = AT.replace(tzinfo=None)
    with warnings.catch_warnings(record=True) as orm_warnings:
        warnings.simplefilter("always")
        projection("orm", created_at=naive).save(using=alias, force_insert=True)
    with warnings.catch_warnings(record=True) as bulk_warnings:
        warnings.simplefilter("always")
        bulk_sql.insert(alias, [projection("bulk", created_at=naive)])
    assert stored(alias, OrderProjection, "bulk")[1:] == stored(alias, OrderProjection, "orm")[1:]
    assert [str(w.message) for w in bulk_warnings if "naive" in str(w.message)]
    assert len([w for w in bulk_warnings if "naive" in str(w.message)]) == \
        len([w for w in orm_warnings if "naive" in str(w.message)])


def test_rows_given_as_values_get_the_defaults_of_the_columns_they_leave_out():
    alias = "payment_service"
    with unit_of_work(alias) as uow:
        uow.emit_new("payment.PaymentFailed.v1", {"orderId": "o-1", "reason": "no"}, correlation_id="c")
    row = OutboxMessage.objects.using(alias).get()
    orm = OutboxMessage(event_id=row.event_id, type=row.type, topic=row.topic, key=row.key, payload=row.payload,
                        created_at=row.created_at)
    orm.save(using=alias)
    assert stored(alias, OutboxMessage, orm.pk)[1:] == stored(alias, OutboxMessage, row.pk)[1:]
    assert (row.dispatched, row.attempts, row.last_error, row.parked_at) == (False, 0, "", None)


def test_an_update_writes_only_the_named_columns():
    alias = "payment_service"
    made = Payment(order_id="o-2", correlation_id="c", status="AWAITING_INVENTORY", total=Decimal("5.10"),
                   created_at=AT, updated_at=AT)
    made.save(using=alias, force_insert=True)
    made.status, made.updated_at, made.total = "AUTHORIZED", AT_ELSEWHERE + timedelta(minutes=1), Decimal("99")
    bulk_sql.update(alias, [made], ["status", "updated_at"])
    row = Payment.objects.using(alias).get(pk="o-2")
    assert (row.status, row.updated_at, row.total) == ("AUTHORIZED", made.updated_at, Decimal("5.10"))


def test_existing_primary_keys_are_found_in_any_number():
    alias = "inventory_service"
    keys = [f"inventory:e-{n}" for n in range(bulk_sql.IN_LIST_SIZE + 3)]
    with unit_of_work(alias) as uow:
        uow.insert_values(ProcessedEvent, [{"id": k, "consumer": "inventory", "event_id": k, "at": AT}
                                           for k in keys[::2]])
    asked = [*keys, "inventory:never"]
    assert bulk_sql.existing_pks(alias, ProcessedEvent, asked) == set(keys[::2])


def test_fields_set_on_many_rows_by_key_touch_those_rows_only():
    alias = "order_service"
    with unit_of_work(alias) as uow:
        for n in range(bulk_sql.IN_LIST_SIZE + 2):
            uow.emit_new("payment.PaymentFailed.v1", {"orderId": f"o-{n}", "reason": "no"}, correlation_id="c")
    ids = list(OutboxMessage.objects.using(alias).order_by("id").values_list("id", flat=True))
    marked = ids[:-1]
    bulk_sql.set_fields(alias, OutboxMessage, marked, {"dispatched": True, "dispatched_at": AT_ELSEWHERE})
    rows = {r.id: r for r in OutboxMessage.objects.using(alias).all()}
    assert all(rows[i].dispatched and rows[i].dispatched_at == AT_ELSEWHERE for i in marked)
    assert not rows[ids[-1]].dispatched and rows[ids[-1]].dispatched_at is None
