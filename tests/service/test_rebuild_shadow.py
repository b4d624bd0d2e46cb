"""The rebuild's database side on every backend: a shadow database, the read model's own consumer code
aimed at it, the comparison, and the swap that never loses what the live consumer applied."""

from __future__ import annotations

import pytest
from django.db import connections

from orders import lifecycle
from readmodel import rebuild
from readmodel.models import OrderProjection
from readmodel.shadow import SHADOW_ALIAS, shadow_database
from shopsite.events import topics
from shopsite.events.consumer import BatchProcessor
from tests.factories import Saga, message
from tests.service.helpers import deliver

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]

LIVE = "read_model_service"


def test_shadow_rebuild_compares_and_swaps_without_losing_newer_live_events():
    sagas = [Saga() for _ in range(4)]
    history = {s.order_id: s.happy_path() for s in sagas}
    for events in history.values():
        deliver("readmodel", events)
    late = sagas[3].next(topics.RETRY_REQUESTED, {"step": "shipping"})  # reaches live only, after the "snapshot"
    deliver("readmodel", [late])

    with shadow_database(LIVE, "test") as shadow:
        assert shadow == SHADOW_ALIAS and OrderProjection.objects.using(shadow).count() == 0
        processor = BatchProcessor(rebuild.readmodel_spec(shadow))
        processor.process([message(e) for events in history.values() for e in events])
        assert OrderProjection.objects.using(LIVE).count() == 4  # the live projections were not touched

        first = rebuild.compare(LIVE, shadow)
        assert first.rebuilt_by_status == first.live_by_status == {lifecycle.SHIPPED: 4}
        assert first.differing == [sagas[3].order_id]  # live has the later event; the replay did not

        # Damage live: one projection lost, one with a wrong status.
        OrderProjection.objects.using(LIVE).filter(pk=sagas[0].order_id).delete()
        OrderProjection.objects.using(LIVE).filter(pk=sagas[1].order_id).update(current_status=lifecycle.CREATED)
        second = rebuild.compare(LIVE, shadow)
        assert second.only_rebuilt == [sagas[0].order_id]
        assert set(second.differing) == {sagas[1].order_id, sagas[3].order_id}

        swapped = rebuild.swap(LIVE, shadow, [*second.differing, *second.only_rebuilt, sagas[2].order_id])
        assert (swapped.inserted, swapped.replaced, swapped.unchanged) == (1, 1, 1)
        assert swapped.live_ahead == [sagas[3].order_id]  # newer live events are never thrown away
        third = rebuild.compare(LIVE, shadow)
        assert third.differing == [sagas[3].order_id] and not third.only_live and not third.only_rebuilt
        kept = OrderProjection.objects.using(LIVE).get(pk=sagas[3].order_id)
        assert kept.timeline[-1]["eventId"] == late.event_id
        # Swapped rows keep the seq numbers live streams already handed out.
        repaired = OrderProjection.objects.using(LIVE).get(pk=sagas[1].order_id)
        assert repaired.current_status == lifecycle.SHIPPED and [e["seq"] for e in repaired.timeline] == [1, 2, 3, 4]
    assert not hasattr(connections._connections, SHADOW_ALIAS)  # dropped and forgotten
