"""Dashboard pages and actions through Django's test client (real databases, no browser)."""

from datetime import datetime, timedelta, timezone

import pytest
from django.test import Client

from orders import lifecycle
from orders.commands import place_order
from orders.lifecycle import entry_for
from shopsite.dashboard import overview
from shopsite.dashboard.actions import available_actions
from shopsite.events import topics
from shopsite.events.models import OutboxMessage
from tests.factories import Saga
from tests.service.helpers import deliver

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]


def test_overview_counts_in_the_database_and_times_sagas():
    now = datetime.now(timezone.utc)
    shipped = [Saga(start=now - timedelta(minutes=5)) for _ in range(3)]
    for saga in shipped:
        deliver("readmodel", saga.happy_path())  # 100 ms per step: 300 ms to SHIPPED
    stuck = Saga(start=now - timedelta(minutes=2))
    deliver("readmodel", [stuck.created(), stuck.next(topics.INVENTORY_FAILED, {"reason": "no SKU-3"})])
    old = Saga(start=now - timedelta(hours=2))
    deliver("readmodel", [old.created()])
    result = overview.compute(now)
    assert result.counts[lifecycle.SHIPPED] == 3 and result.counts[lifecycle.INVENTORY_FAILED] == 1
    assert result.counts[lifecycle.CREATED] == 1 and result.total == 5
    assert (result.recent, result.shipped, result.failed) == (4, 3, 1)
    assert result.completion_rate == 0.75
    assert result.median_seconds == pytest.approx(0.3) and result.p95_seconds == pytest.approx(0.3)
    assert result.backlog_total == 0 and result.dead_letters == 0


def test_buttons_follow_the_timeline():
    saga = Saga()
    events = [saga.created(), saga.reserved(), saga.authorized(), saga.next(topics.SHIPPING_FAILED, {"reason": "x"})]
    actions = {a.value: a.enabled for a in available_actions(lifecycle.SHIPPING_FAILED, [entry_for(e) for e in events])}
    assert actions == {"inventory": False, "payment": False, "shipping": True, "refundPayment": True,
                       "releaseInventory": False}  # refund first: shipping may still ship it
    refunded = events + [saga.next(topics.PAYMENT_REFUNDED, {"amount": saga.total, "refundId": "r"})]
    actions = {a.value: a.enabled for a in available_actions(lifecycle.REFUNDED, [entry_for(e) for e in refunded])}
    assert actions["refundPayment"] is False and actions["shipping"] is False
    assert actions["releaseInventory"] is True


def test_pages_need_sign_in_and_render_for_viewers(anonymous, viewer_user, operator_user):
    order = place_order([{"sku": "SKU-1", "qty": 1}], 3).order
    pages = ["/", "/?status=SHIPPED&q=abc", "/overview", "/controls", f"/orders/{order.order_id}",
             f"/orders/{order.order_id}/panel"]
    operator_pages = ["/orders/new", "/dlq"]
    for url in pages + operator_pages:
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next="), url
    assert anonymous.get("/accounts/login/").status_code == 200
    viewer = Client()
    viewer.force_login(viewer_user)
    for url in pages:
        assert viewer.get(url).status_code == 200, url
    for url in operator_pages:
        assert viewer.get(url).status_code == 403, url
    operator = Client()
    operator.force_login(operator_user)
    for url in pages + operator_pages:
        assert operator.get(url).status_code == 200, url
    assert operator.get("/orders/nope").status_code == 404


def test_actions_need_login_staff_and_csrf(viewer_user, operator_user):
    order = place_order([{"sku": "SKU-1", "qty": 1}], 3).order
    url = f"/orders/{order.order_id}/retry/payment"
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post(url).status_code == 403  # no CSRF token
    browser = Client()
    assert browser.post(url).status_code == 302  # to the login page
    browser.force_login(viewer_user)
    assert browser.post(url).status_code == 403
    browser.force_login(operator_user)
    assert browser.post(url).status_code == 302
    assert OutboxMessage.objects.using("order_service").filter(type=topics.RETRY_REQUESTED).count() == 1
    assert browser.post(f"/orders/{order.order_id}/retry/everything").status_code == 404


def test_forms_validate_and_act(operator_user):
    client = Client()
    client.force_login(operator_user)
    bad = client.post("/orders/create", {"sku": ["SKU-1"], "qty": ["0"], "total": "5"})
    assert bad.status_code == 400 and b"items.0.qty" in bad.content
    good = client.post("/orders/create", {"sku": ["SKU-1", "", "SKU-2"], "qty": ["2", "", "1"], "total": "9.5"})
    assert good.status_code == 302 and good["Location"].startswith("/orders/")
    client.post("/controls/stock/SKU-4", {"available": "7"})
    client.post("/controls/payment", {"declineAbove": "10", "failureRate": "0.5"})
    client.post("/controls/shipping", {"outage": "on", "failureRate": "0"})
    from inventory.models import Stock
    from payment.models import PaymentSimulator
    from shipping.models import ShippingSimulator

    assert Stock.objects.using("inventory_service").get(sku="SKU-4").available == 7
    sim = PaymentSimulator.current("payment_service")
    assert (float(sim.decline_above), sim.failure_rate) == (10.0, 0.5)
    assert ShippingSimulator.current("shipping_service").outage is True
    rejected = client.post("/controls/payment", {"declineAbove": "", "failureRate": "7"}, follow=True)
    assert b"outside" in rejected.content and PaymentSimulator.current("payment_service").failure_rate == 0.5
