from __future__ import annotations

from readmodel import deadletters, live
from readmodel.models import OrderProjection
from readmodel.projection import project
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork


def on_event(event: Event, uow: UnitOfWork) -> None:
    if project(event, uow.alias) is not None:
        live.order_changed(uow, event.order_id)


def on_dead_letter(event: Event, uow: UnitOfWork) -> None:
    deadletters.store(event, uow.alias)
    # Show it on the order's timeline too, but never invent an order from a stray key.
    if event.key and OrderProjection.objects.using(uow.alias).filter(pk=event.key).exists():
        on_event(event, uow)


HANDLERS = {t: on_event for t in topics.ALL_EVENT_TYPES}
HANDLERS[topics.DEAD_LETTER] = on_dead_letter
# A message on the dead-letter topic that is not a readable dead letter: stored too (never re-dead-lettered).
UNREADABLE = deadletters.store_unreadable
