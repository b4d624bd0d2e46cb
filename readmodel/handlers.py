from __future__ import annotations

from readmodel.projection import project
from shopsite.events import topics
from shopsite.events.envelope import Event
from shopsite.events.unit_of_work import UnitOfWork


def on_event(event: Event, uow: UnitOfWork) -> None:
    project(event, uow.alias)


# Every order event; dead letters are stored by the operations side, not projected here.
HANDLERS = {t: on_event for t in topics.ALL_EVENT_TYPES if t != topics.DEAD_LETTER}
