"""The dashboard's charts through Django's test client, drawn from real projections and metrics."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from django.conf import settings

from shopsite.dashboard import pulse, svg
from shopsite.events import topics
from shopsite.events.metrics import CONSUMER_LAG, OUTBOX_BACKLOG
from tests.factories import Saga
from tests.service.helpers import deliver

pytestmark = [pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock"), pytest.mark.django_db]
NS = {"s": "http://www.w3.org/2000/svg"}


@pytest.fixture(autouse=True)
def history(monkeypatch) -> pulse.History:
    # A Redis nobody listens on: the history stays in this process (the fallback path),
    # and these tests never write samples into a Redis some running stack reads.
    own = pulse.History("redis://127.0.0.1:9/0")
    monkeypatch.setattr(pulse, "_history", own)
    return own


def figure(html: str, element_id: str) -> ET.Element:
    match = re.search(rf'<figure class="chart-box[^"]*" id="{element_id}">(.*?)</figure>', html, re.S)
    assert match, f"no #{element_id} in the page"
    return ET.fromstring(match.group(1))


def bar_titles(chart: ET.Element) -> set[str]:
    return {b.find("s:title", NS).text for b in chart.findall(".//s:rect[@class='bar']", NS)}


def test_list_page_draws_orders_per_minute_and_latency_from_projections(client):
    now = datetime.now(timezone.utc)
    two_ago = now - timedelta(minutes=2)
    for _ in range(3):
        deliver("readmodel", Saga(start=two_ago).happy_path())  # 300 ms to SHIPPED
    failed = Saga(start=now - timedelta(minutes=1))
    deliver("readmodel", [failed.created(), failed.next(topics.INVENTORY_FAILED, {"reason": "out of SKU-3"})])
    deliver("readmodel", [Saga(start=now - timedelta(seconds=1)).created()])
    deliver("readmodel", Saga(start=now - timedelta(hours=2)).happy_path())  # outside the window

    html = client.get("/?minutes=15").content.decode()
    throughput = figure(html, "chart-throughput")
    minute = lambda at: svg.clock(at + timedelta(milliseconds=100))  # noqa: E731 - Saga's first event is +100 ms
    assert {f"{minute(two_ago)} shipped: 3", f"{minute(now - timedelta(minutes=1))} failed: 1"} <= bar_titles(throughput)
    assert "in flight: 1" in " ".join(bar_titles(throughput))
    assert sum(int(t.rsplit(": ", 1)[1]) for t in bar_titles(throughput)) == 5
    latency = figure(html, "chart-latency")
    assert latency.find("s:desc", NS).text == "p50 last 300 ms, p95 last 300 ms"


def test_lag_and_backlog_come_from_the_metrics(client):
    group = f"{settings.KAFKA_GROUP_PREFIX}.payment"
    try:
        CONSUMER_LAG.labels(group, topics.INVENTORY_RESERVED, "0").set(5)
        CONSUMER_LAG.labels(group, topics.INVENTORY_RESERVED, "1").set(2)
        OUTBOX_BACKLOG.labels("shipping").set(11)
        html = client.get("/charts", HTTP_HX_REQUEST="true").content.decode()
    finally:
        CONSUMER_LAG.remove(group, topics.INVENTORY_RESERVED, "0")
        CONSUMER_LAG.remove(group, topics.INVENTORY_RESERVED, "1")
        OUTBOX_BACKLOG.remove("shipping")
    assert "<html" not in html  # the fragment htmx swaps in
    assert "payment last 7" in figure(html, "chart-lag").find("s:desc", NS).text
    assert "shipping last 11" in figure(html, "chart-backlog").find("s:desc", NS).text


def test_charts_have_a_page_of_their_own_without_htmx(client):
    answer = client.get("/charts?minutes=60")
    html = answer.content.decode()
    assert answer.status_code == 200 and "<html" in html
    assert 'class="active" data-minutes="60"' in html
    assert "no orders placed in this window" in html


def test_order_page_shows_the_saga_in_service_lanes(client):
    saga = Saga(start=datetime.now(timezone.utc))
    deliver("readmodel", [saga.created(), saga.reserved(), saga.next(topics.PAYMENT_FAILED, {"reason": "declined"})])
    for url in (f"/orders/{saga.order_id}", f"/orders/{saga.order_id}/saga"):
        html = client.get(url).content.decode()
        match = re.search(r'<figure class="chart-box saga">(.*?)</figure>', html, re.S)
        assert match, url
        chart = ET.fromstring(match.group(1))
        steps = [g.get("data-type") for g in chart.findall(".//s:g[@class='step']", NS)]
        assert steps == ["OrderCreated", "InventoryReserved", "PaymentFailed"]
        assert [t.text for t in chart.findall(".//s:text[@class='gap']", NS)] == ["+100 ms", "+100 ms"]
    assert client.get("/orders/nope/saga").status_code == 404


def test_a_busy_window_still_has_a_latency_point_in_every_minute(client, monkeypatch):
    from shopsite.dashboard import charts

    monkeypatch.setattr(charts, "SAMPLE_LIMIT", 3)  # 6 shipped orders in 2 minutes; newest 3 would all be the later minute
    now = datetime.now(timezone.utc)
    for start in (now - timedelta(minutes=3), now - timedelta(minutes=1)):
        for _ in range(3):
            deliver("readmodel", Saga(start=start).happy_path())
    html = client.get("/charts?minutes=15", HTTP_HX_REQUEST="true").content.decode()
    points = figure(html, "chart-latency").findall(".//s:circle/s:title", NS)
    p50_minutes = {t.text.split(" ")[0] for t in points if " p50: " in t.text}
    assert p50_minutes == {svg.clock(now - timedelta(minutes=3) + timedelta(milliseconds=100)),
                           svg.clock(now - timedelta(minutes=1) + timedelta(milliseconds=100))}
