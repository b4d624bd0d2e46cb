"""The read model consumes every topic: events project into orders_projection, dead letters into the DLQ."""

from __future__ import annotations

from readmodel import deadletters, live
from readmodel.models import OrderProjection
from readmodel.projection import project_all
from shopsite.events import topics
from shopsite.events.consumer import BatchHandler, Handler
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork


def project_events(events: list[Event], uow: UnitOfWork) -> None:
    """Every saga event: one load of the touched projections, one bulk write."""
    changed = project_all(events, uow)
    if changed:
        live.orders_changed(uow, [row.order_id for row in changed])


def on_dead_letter(event: Event, uow: UnitOfWork) -> None:
    deadletters.store(event, uow.alias)
    # Show it on the order's timeline too, but never invent an order from a stray key.
    if event.key and OrderProjection.objects.using(uow.alias).filter(pk=event.key).exists():
        project_events([event], uow)


PROJECT = BatchHandler(project_events)
HANDLERS: dict[str, Handler] = {t: PROJECT for t in topics.ALL_EVENT_TYPES}
HANDLERS[topics.DEAD_LETTER] = on_dead_letter

# Users watch every step of an order's happy path live (ConsumerSpec.lanes).
SAGA_LANE = topics.HAPPY_PATH

# A message on the dead-letter topic that is not a readable dead letter: stored too (never re-dead-lettered).
UNREADABLE = deadletters.store_unreadable
