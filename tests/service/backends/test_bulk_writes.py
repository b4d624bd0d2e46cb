"""UnitOfWork's bulk writes behave like writing the rows one by one, in order.

On PostgreSQL new rows go through COPY (shopsite/events/pg_copy.py).
Transactional tests: real commits, real sessions.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connections
from django.test.utils import CaptureQueriesContext

from readmodel.models import OrderProjection
from readmodel.projection import project
from shopsite.events.models import OutboxMessage
from shopsite.events.unit_of_work import unit_of_work
from tests.factories import Saga

pytestmark = [pytest.mark.backends("sqlite", "postgres"), pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ALIAS = "read_model_service"


def _projected(*sagas: Saga) -> list[OrderProjection]:
    with unit_of_work(ALIAS) as uow:
        for saga in sagas:
            project(saga.created(), uow)
    return list(OrderProjection.objects.using(ALIAS).filter(pk__in=[s.order_id for s in sagas]).order_by("pk"))


def _many(count: int = 4) -> list[OrderProjection]:
    return _projected(*[Saga() for _ in range(count)])


def _status(order_id: str) -> str:
    return OrderProjection.objects.using(ALIAS).get(pk=order_id).current_status


@pytest.mark.parametrize("others", [0, 3])
def test_the_last_of_several_rows_with_one_key_wins(others: int):
    row, *rest = _many(1 + others)
    again = OrderProjection.objects.using(ALIAS).get(pk=row.pk)
    row.current_status, again.current_status = "PAID", "SHIPPED"
    with unit_of_work(ALIAS) as uow:
        uow.update_rows([row, *rest, again], ["current_status"])
    assert _status(row.pk) == "SHIPPED"


def test_a_second_update_in_one_transaction_writes_only_its_own_rows():
    first, second = _many(), _many()
    with unit_of_work(ALIAS) as uow:
        for row in first:
            row.current_status = "PAID"
        uow.update_rows(first, ["current_status"])
        OrderProjection.objects.using(ALIAS).filter(pk__in=[r.pk for r in first]).update(current_status="CANCELLED")
        for row in second:
            row.current_status = "SHIPPED"
        uow.update_rows(second, ["current_status"])
    assert {_status(r.pk) for r in first} == {"CANCELLED"}
    assert {_status(r.pk) for r in second} == {"SHIPPED"}


def test_inserted_rows_keep_their_order_and_an_existing_key_fails_the_transaction():
    events = [Saga().created() for _ in range(5)]
    with unit_of_work(ALIAS) as uow:
        for event in events:
            uow.emit(event)
    rows = OutboxMessage.objects.using(ALIAS).order_by("id")
    assert [r.event_id for r in rows] == [e.event_id for e in events]

    [row] = _projected(Saga())
    with pytest.raises(IntegrityError), unit_of_work(ALIAS) as uow:
        uow.emit(Saga().created())
        uow.insert_rows([OrderProjection(order_id=row.pk, created_at=row.created_at, current_status="PAID",
                                         timeline=[], updated_at=row.updated_at)])
    assert OutboxMessage.objects.using(ALIAS).count() == 5  # the whole transaction rolled back
    assert _status(row.pk) == "CREATED"


def test_bulk_writes_are_in_the_query_log():
    with CaptureQueriesContext(connections[ALIAS]) as captured, unit_of_work(ALIAS) as uow:
        uow.emit(Saga().created())
    assert any(OutboxMessage._meta.db_table in q["sql"] for q in captured.captured_queries)
