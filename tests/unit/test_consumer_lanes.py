"""Each service's consumer split in lanes: the saga lane reads what moves an order on, the other lane the rest."""

from __future__ import annotations

import pytest
from django.test import override_settings

from shopsite.events import topics
from shopsite.events.consumer import ConsumerSpec
from shopsite.events.kafka import consumer_config
from shopsite.events.registry import consumer_specs
from shopsite.services import BY_NAME

pytestmark = pytest.mark.backends("sqlite", "postgres", "mongodb", "mongomock")

SAGA_STEPS = {
    "inventory": {topics.ORDER_CREATED},
    "payment": {topics.ORDER_CREATED, topics.INVENTORY_RESERVED},
    "shipping": {topics.PAYMENT_AUTHORIZED},
    "readmodel": set(topics.HAPPY_PATH),
    "orders": set(),
}


def _noop(event, uow) -> None:  # noqa: ANN001
    return None


@pytest.mark.parametrize("spec", consumer_specs(), ids=lambda s: s.name)
def test_lanes_share_a_service_s_topics_without_overlap(spec: ConsumerSpec) -> None:
    lanes = spec.lanes()
    subscribed = [t for lane in lanes for t in lane.topics]
    assert sorted(subscribed) == spec.topics  # every topic read once, by exactly one lane
    assert lanes[0].group_id == spec.group_id  # the service's group; its other lane has a group of its own
    assert [lane.group_id for lane in lanes[1:]] == [f"{spec.group_id}.other"] * (len(lanes) - 1)
    assert {lane.name for lane in lanes} == {spec.name}  # one inbox namespace (processed_events keys)
    assert len({lane.member_name for lane in lanes}) == len(lanes)  # readiness tells them apart


@pytest.mark.parametrize("spec", consumer_specs(), ids=lambda s: s.name)
def test_the_saga_lane_holds_the_events_that_move_an_order_on(spec: ConsumerSpec) -> None:
    fast = [lane for lane in spec.lanes() if lane.fetch_pace_ms is None]
    assert {t for lane in fast for t in lane.handlers} == SAGA_STEPS[spec.name]
    assert all(lane.fetch_wait_ms == 10 for lane in fast)


@override_settings(KAFKA_FETCH_WAIT_MS=7, KAFKA_OTHER_FETCH_WAIT_MS=250)
def test_the_other_lane_waits_longer_and_paces_its_fetches() -> None:
    spec = ConsumerSpec(BY_NAME["inventory"], {topics.ORDER_CREATED: _noop, topics.RETRY_REQUESTED: _noop},
                        saga_lane=frozenset({topics.ORDER_CREATED}))
    saga, other = spec.lanes()
    assert (saga.lane, saga.topics, saga.fetch_wait_ms, saga.fetch_pace_ms) == ("saga", [topics.ORDER_CREATED], 7, None)
    assert (other.lane, other.topics, other.fetch_wait_ms, other.fetch_pace_ms) == (
        "other", [topics.RETRY_REQUESTED], 250, 250)
    assert (saga.member_name, other.member_name) == ("inventory/saga", "inventory/other")


@override_settings(KAFKA_FETCH_WAIT_MS=7, KAFKA_OTHER_FETCH_WAIT_MS=250)
def test_a_service_with_one_kind_of_event_keeps_one_consumer() -> None:
    only_saga = ConsumerSpec(BY_NAME["shipping"], {topics.PAYMENT_AUTHORIZED: _noop},
                             saga_lane=frozenset({topics.PAYMENT_AUTHORIZED}))
    only_other = ConsumerSpec(BY_NAME["orders"], {topics.ORDER_SHIPPED: _noop})
    [fast] = only_saga.lanes()
    [slow] = only_other.lanes()
    assert (fast.member_name, fast.fetch_wait_ms, fast.fetch_pace_ms) == ("shipping", 7, None)
    assert (slow.member_name, slow.fetch_wait_ms, slow.fetch_pace_ms) == ("orders", 250, 250)


def test_pacing_is_librdkafka_s_queue_backoff_after_any_fetched_message() -> None:
    paced = consumer_config("g", fetch_wait_ms=100, fetch_pace_ms=100)
    assert (paced["fetch.wait.max.ms"], paced["queued.min.messages"], paced["fetch.queue.backoff.ms"]) == (100, 1, 100)
    unpaced = consumer_config("g", fetch_wait_ms=10)
    assert unpaced["fetch.wait.max.ms"] == 10
    assert "queued.min.messages" not in unpaced and "fetch.queue.backoff.ms" not in unpaced
