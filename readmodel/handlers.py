from __future__ import annotations

from readmodel import deadletters
from readmodel.models import OrderProjection
from readmodel.projection import project
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork


def on_event(event: Event, uow: UnitOfWork) -> None:
    project(event, uow.alias)


def on_dead_letter(event: Event, uow: UnitOfWork) -> None:
    deadletters.store(event, uow.alias)
    # Show it on the order's timeline too, but never invent an order from a stray key.
    if event.key and OrderProjection.objects.using(uow.alias).filter(pk=event.key).exists():
        project(event, uow.alias)


HANDLERS = {t: on_event for t in topics.ALL_EVENT_TYPES}
HANDLERS[topics.DEAD_LETTER] = on_dead_letter
