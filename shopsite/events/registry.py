"""Which events each service consumes: every service app declares
`HANDLERS = {event_type: handler}` in its `handlers` module, and in
`SAGA_LANE` those of them that move an order on (ConsumerSpec.lanes)."""

from __future__ import annotations

from importlib import import_module

from shopsite.events.consumer import ConsumerSpec
from shopsite.services import SERVICES, Service


def consumer_spec(service: Service) -> ConsumerSpec:
    module = import_module(f"{service.app_label}.handlers")
    return ConsumerSpec(service=service, handlers=module.HANDLERS, unreadable=getattr(module, "UNREADABLE", None),
                        saga_lane=frozenset(getattr(module, "SAGA_LANE", ())))


def consumer_specs(services: list[Service] | None = None) -> list[ConsumerSpec]:
    return [consumer_spec(s) for s in (services if services is not None else SERVICES)]
