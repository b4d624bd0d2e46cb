"""The five services: which app owns which database alias.

The one table every part (router, consumer runtime, worker option, health
check) reads, so adding a service is a one-line change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    name: str  # short name used on the command line: --services=orders,payment
    app_label: str
    alias: str  # database alias, named as in the seed
    web_port: int  # its web port when deployed alone, as in the seed


SERVICES: tuple[Service, ...] = (
    Service("orders", "orders", "order_service", 4001),
    Service("inventory", "inventory", "inventory_service", 4002),
    Service("payment", "payment", "payment_service", 4003),
    Service("shipping", "shipping", "shipping_service", 4004),
    Service("readmodel", "readmodel", "read_model_service", 4005),
)

SERVICE_ALIASES: tuple[str, ...] = tuple(s.alias for s in SERVICES)
BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES}
BY_APP_LABEL: dict[str, Service] = {s.app_label: s for s in SERVICES}
BY_ALIAS: dict[str, Service] = {s.alias: s for s in SERVICES}


def parse_service_names(spec: str) -> list[Service]:
    """Parse a worker option like "orders,payment" or "all"."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names or names == ["all"]:
        return list(SERVICES)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown service(s) {unknown}; known: {sorted(BY_NAME)}")
    return [BY_NAME[n] for n in names]


def served_services(service: str) -> list[Service]:
    """The services this process serves: the one SHOPSITE_SERVICE names (e.g. "orders"), else ("") all.

    Set for a per-service deployment: the web process then routes only that
    service's endpoints, /health checks only its database, and beat sweeps
    only its outbox.
    """
    return parse_service_names(service)


def task_queue(service: Service) -> str:
    """The Celery queue of a service's outbox tasks, consumed only by workers running that service.

    Per-service deployments share Redis; a worker must never be handed
    another service's outbox, whose database it may not be able to reach.
    """
    return f"outbox.{service.name}"
