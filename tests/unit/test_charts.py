"""The dashboard's chart code without a database: series, SVG markup, metrics samples."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from orders import lifecycle
from shopsite.dashboard import pulse, series, svg
from shopsite.dashboard.charts import lane_of, step_of, window_minutes
from shopsite.dashboard.series import Window
from shopsite.events import topics

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")

NS = {"s": "http://www.w3.org/2000/svg"}
NOW = datetime(2026, 11, 24, 10, 30, 20, tzinfo=timezone.utc)


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # fails on markup that is not well-formed XML


# --- series --------------------------------------------------------------------------------

def test_window_is_whole_minutes_ending_with_the_current_one():
    window = Window(NOW, 3)
    assert window.buckets == [datetime(2026, 11, 24, 10, m, tzinfo=timezone.utc) for m in (28, 29, 30)]
    assert window.index(NOW) == 2 and window.index(NOW - timedelta(minutes=2)) == 0
    assert window.index(NOW - timedelta(minutes=3)) is None and window.index(NOW + timedelta(minutes=1)) is None


def test_orders_per_minute_groups_statuses_into_outcomes():
    window = Window(NOW, 3)
    m0, m2 = window.buckets[0], window.buckets[2]
    counts = [(m0, lifecycle.SHIPPED, 4), (m0, lifecycle.PAYMENT_FAILED, 1), (m0, lifecycle.INVENTORY_FAILED, 2),
              (m2, lifecycle.REFUNDED, 1), (m2, lifecycle.PAYMENT_AUTHORIZED, 3), (m2, lifecycle.CREATED, 2),
              (m0 - timedelta(minutes=5), lifecycle.SHIPPED, 99)]  # outside the window: not counted
    assert series.orders_per_minute(window, counts) == {
        series.SHIPPED: [4, 0, 0], series.FAILED: [3, 0, 0], series.REFUNDED: [0, 0, 1], series.IN_FLIGHT: [0, 0, 5],
    }


def test_percentiles_per_minute_leave_empty_minutes_empty():
    window = Window(NOW, 2)
    first = window.buckets[0] + timedelta(seconds=10)
    samples = [(first, s / 100) for s in range(1, 101)]  # 0.01 .. 1.00 s
    result = series.latency_per_minute(window, samples)
    assert result[0.5] == [0.5, None] and result[0.95] == [0.95, None]
    assert series.percentile([3.0], 0.95) == 3.0


def test_seconds_between_reads_event_times():
    timeline = [{"type": topics.ORDER_CREATED, "at": "2026-11-24T10:00:00.000Z"},
                {"type": topics.ORDER_SHIPPED, "at": "2026-11-24T10:00:00.250Z"}]
    assert series.seconds_between(timeline, topics.ORDER_CREATED, topics.ORDER_SHIPPED) == pytest.approx(0.25)
    assert series.seconds_between(timeline[:1], topics.ORDER_CREATED, topics.ORDER_SHIPPED) is None


# --- svg -----------------------------------------------------------------------------------

@pytest.mark.parametrize("top, expected", [(7, [0, 2, 4, 6, 8]), (0.35, [0, 0.1, 0.2, 0.3, 0.4]),
                                            (100, [0, 50, 100]), (1, [0, 0.5, 1])])
def test_ticks_are_round_and_cover_the_top(top, expected):
    assert svg.ticks(top) == pytest.approx(expected)


def test_counts_get_whole_ticks():
    assert svg.ticks(1, whole=True) == [0, 1] and svg.ticks(3, whole=True) == [0, 1, 2, 3]


def test_durations_read_like_durations():
    assert [svg.seconds(v) for v in (0.035, 1.25, 300)] == ["35 ms", "1.25 s", "5 min"]


def test_stacked_bars_stack_layers_in_proportion():
    markup = svg.stacked_bars("Orders", ["10:00", "10:01"], [svg.Series("ok", "#0a0", [3, 0]),
                                                             svg.Series("bad", "#a00", [1, 4])])
    bars = parse(markup).findall(".//s:rect[@class='bar']", NS)
    heights = {(b.get("fill"), b.find("s:title", NS).text): float(b.get("height")) for b in bars}
    assert set(heights) == {("#0a0", "10:00 ok: 3"), ("#a00", "10:00 bad: 1"), ("#a00", "10:01 bad: 4")}
    assert heights[("#0a0", "10:00 ok: 3")] == pytest.approx(3 * heights[("#a00", "10:00 bad: 1")], rel=0.02)
    # stacked: the first minute's "bad" sits on top of its "ok"
    ok, bad = (next(b for b in bars if b.find("s:title", NS).text == t) for t in ("10:00 ok: 3", "10:00 bad: 1"))
    assert float(bad.get("y")) + float(bad.get("height")) == pytest.approx(float(ok.get("y")), abs=0.2)


def test_an_empty_chart_says_so_and_escapes_text():
    markup = svg.stacked_bars("<b>&", ["10:00"], [svg.Series("x<y", "#000", [0])], empty="nothing <here>")
    root = parse(markup)
    assert root.find("s:title", NS).text == "<b>&"
    assert root.find(".//s:text[@class='empty']", NS).text == "nothing <here>"
    assert not root.findall(".//s:rect[@class='bar']", NS)


def test_lines_break_where_nothing_was_measured():
    markup = svg.lines("Lag", ["a", "b", "c", "d"], [svg.Series("orders", "#00f", [1, None, 2, 3])])
    polylines = parse(markup).findall(".//s:polyline", NS)
    assert [len(p.get("points").split()) for p in polylines] == [1, 2]
    assert "orders last 3" in parse(markup).find("s:desc", NS).text


def test_saga_lanes_place_steps_in_their_service_lane_with_the_time_between():
    start = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    steps = [svg.Step("orders", "OrderCreated", start), svg.Step("inventory", "InventoryReserved",
                                                                 start + timedelta(milliseconds=35)),
             svg.Step("payment", "PaymentFailed", start + timedelta(milliseconds=1535), "bad")]
    root = parse(svg.saga_lanes("Saga", ("orders", "inventory", "payment"), steps))
    circles = root.findall(".//s:g[@class='step']/s:circle", NS)
    ys = [float(c.get("cy")) for c in circles]
    xs = [float(c.get("cx")) for c in circles]
    assert ys[0] < ys[1] < ys[2] and xs[0] < xs[1] < xs[2]  # own lanes, causal order left to right
    assert circles[2].get("fill") == svg.TONES["bad"]
    assert [t.text for t in root.findall(".//s:text[@class='gap']", NS)] == ["+35 ms", "+1.5 s"]


def test_saga_steps_come_from_timeline_entries():
    entry = {"type": topics.INVENTORY_FAILED, "at": "2026-11-24T10:00:00.100Z"}
    step = step_of(entry)
    assert (step.lane, step.label, step.tone) == ("inventory", "InventoryFailed", "bad")
    assert lane_of(topics.ORDER_CREATED) == "orders" and lane_of(topics.RETRY_REQUESTED) == "ops"
    assert lane_of(topics.ORDER_SHIPPED) == "shipping" and lane_of(topics.PAYMENT_REFUNDED) == "payment"


def test_window_choice_falls_back_to_the_default():
    assert window_minutes("60") == 60
    assert window_minutes("61") == window_minutes("x") == window_minutes(None) == 30


# --- metrics samples -----------------------------------------------------------------------

def test_a_sample_sums_lag_over_partitions_per_service():
    registry = CollectorRegistry()
    lag = Gauge("shopsite_consumer_lag_messages", "lag", ["group", "topic", "partition"], registry=registry)
    backlog = Gauge("shopsite_outbox_backlog", "backlog", ["service"], registry=registry)
    lag.labels("shop.payment", "inventory.InventoryReserved.v1", "0").set(3)
    lag.labels("shop.payment", "inventory.InventoryReserved.v1", "1").set(4)
    lag.labels("shop.orders", "payment.PaymentFailed.v1", "0").set(0)
    backlog.labels("shipping").set(12)
    sample = pulse.read_sample(generate_latest(registry).decode(), 1000.0, "shop")
    assert sample.lag == {"payment": 7, "orders": 0} and sample.backlog == {"shipping": 12}
    assert pulse.Sample.from_json(sample.to_json()) == sample


def test_per_minute_keeps_the_highest_sample_and_gaps():
    window = Window(NOW, 3)
    at = window.buckets[1].timestamp()
    samples = [pulse.Sample(at + 5, {"orders": 2}), pulse.Sample(at + 15, {"orders": 9}),
               pulse.Sample(at + 25, {"orders": 1})]
    assert pulse.per_minute(window, samples, lambda s: s.lag, ["orders", "payment"]) == {
        "orders": [None, 9, None], "payment": [None, 0, None]}


def test_line_legends_carry_the_latest_value():
    markup = svg.lines("Latency", ["a", "b"], [svg.Series("p50", "#00f", [0.2, None]), svg.Series("p95", "#f00", [None, None])],
                       fmt=svg.seconds)
    assert [t.text for t in parse(markup).findall(".//s:text[@class='legend']", NS)] == ["p50 200 ms", "p95"]
