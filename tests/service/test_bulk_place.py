"""orders.commands.place_orders: many orders in one transaction, as loadgen --direct places them."""

import pytest
from pydantic import ValidationError

from orders.commands import ALIAS, place_orders
from orders.models import Order
from orders import lifecycle
from shopsite.events import topics
from shopsite.events.models import OutboxMessage

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def test_each_order_gets_its_document_and_one_order_created_row_in_placing_order():
    requests = [([{"sku": f"SKU-{n}", "qty": n}], 10 * n) for n in range(1, 6)]
    placed = place_orders(requests)

    assert [o.items[0]["sku"] for o in placed] == [f"SKU-{n}" for n in range(1, 6)]
    stored = {o.order_id: o for o in Order.objects.using(ALIAS).all()}
    assert set(stored) == {o.order_id for o in placed}
    assert all(o.status == lifecycle.CREATED and len(o.history) == 1 for o in stored.values())
    rows = list(OutboxMessage.objects.using(ALIAS).order_by("id"))
    assert [r.key for r in rows] == [o.order_id for o in placed]  # publish order = placing order
    assert {r.type for r in rows} == {topics.ORDER_CREATED}
    assert [r.payload["payload"]["total"] for r in rows] == [10.0 * n for n in range(1, 6)]


def test_one_invalid_order_writes_nothing():
    with pytest.raises(ValidationError):
        place_orders([([{"sku": "SKU-1", "qty": 1}], 5), ([{"sku": "SKU-1", "qty": 0}], 5)])
    assert Order.objects.using(ALIAS).count() == 0 and OutboxMessage.objects.using(ALIAS).count() == 0
