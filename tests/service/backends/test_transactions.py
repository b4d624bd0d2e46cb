"""The unit of work's transaction on every backend: all or nothing, callbacks only after commit.

Transactional tests (real commits), so what is checked is what the backend
does, not what a test-wrapping transaction hides.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connections
from pymongo.errors import PyMongoError

from readmodel.models import OrderProjection
from readmodel.projection import project
from shopsite.events.models import OutboxMessage
from shopsite.events.unit_of_work import unit_of_work
from tests.factories import Saga

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ALIAS = "read_model_service"


def test_on_commit_callbacks_run_after_the_commit_and_never_after_a_rollback():
    ran: list[str] = []
    with unit_of_work(ALIAS) as uow:
        uow.on_commit(lambda: ran.append("committed"))
        assert ran == []  # not while the transaction is open
    assert ran == ["committed"]

    with pytest.raises(RuntimeError), unit_of_work(ALIAS) as uow:
        uow.on_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("handler failed")
    assert ran == ["committed"]


def test_state_and_outbox_rows_commit_together_or_not_at_all():
    created = Saga().created()
    with pytest.raises(RuntimeError), unit_of_work(ALIAS) as uow:
        project(created, uow)
        uow.emit(created)
        uow.flush()  # the outbox row is written, then the work fails
        raise RuntimeError("after writing")
    assert not OrderProjection.objects.using(ALIAS).filter(pk=created.order_id).exists()
    assert not OutboxMessage.objects.using(ALIAS).filter(event_id=created.event_id).exists()

    with unit_of_work(ALIAS) as uow:
        project(created, uow)
        uow.emit(created)
    assert OrderProjection.objects.using(ALIAS).filter(pk=created.order_id).exists()
    assert OutboxMessage.objects.using(ALIAS).filter(event_id=created.event_id).count() == 1


@pytest.mark.backends("mongodb", "mongomock")
def test_mongo_without_a_replica_set_is_refused_loudly(monkeypatch):
    # A standalone mongod cannot run transactions; silently writing without one would lose atomicity.
    monkeypatch.setattr(connections[ALIAS].features, "_supports_transactions", False)
    with pytest.raises(ImproperlyConfigured, match="replica set"), unit_of_work(ALIAS):
        pass


def test_bulk_writes_insert_new_rows_update_only_the_named_fields_and_never_overwrite_on_insert():
    first, second = Saga(total=10).created(), Saga(total=20).created()
    with unit_of_work(ALIAS) as uow:
        project(first, uow)
        project(second, uow)
    rows = list(OrderProjection.objects.using(ALIAS).filter(pk__in=[first.order_id, second.order_id]).order_by("pk"))
    for row in rows:
        row.current_status, row.total = "SHIPPED", 99  # total is changed in memory but not named below
    with unit_of_work(ALIAS) as uow:
        uow.update_rows(rows, ["current_status"])
    after = {r.order_id: r for r in OrderProjection.objects.using(ALIAS).all()}
    assert {r.current_status for r in after.values()} == {"SHIPPED"}
    assert (after[first.order_id].total, after[second.order_id].total) == (10, 20)
    assert [e["eventId"] for e in after[first.order_id].timeline] == [first.event_id]

    # A plain insert of a row that exists fails: that is what stops two processes creating one row twice.
    # (django-mongodb-backend lets the driver's duplicate-key error through as it is.)
    with pytest.raises((IntegrityError, PyMongoError)), unit_of_work(ALIAS) as uow:
        uow.insert_rows([OrderProjection(order_id=first.order_id, created_at=first.timestamp, current_status="CREATED",
                                         timeline=[], updated_at=first.timestamp)])
    assert OrderProjection.objects.using(ALIAS).get(pk=first.order_id).current_status == "SHIPPED"
