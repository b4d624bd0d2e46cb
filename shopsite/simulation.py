"""What the payment and shipping simulators share: failure injection that is
deterministic unless asked otherwise, and the abstract model of their settings row.

Neutral ground (neither messaging nor one service): each service owns its
concrete model (payment/models.py, shipping/models.py) and its endpoint and
commands (payment/application.py, shipping/application.py)."""

from __future__ import annotations

import random
from typing import Any, Self

from django.db import models

from shopsite.events import bulk_sql

_random = random.Random()


def fails(failure_rate: float) -> bool:
    """True with probability failure_rate; never when it is 0, always when it is 1."""
    return failure_rate > 0 and _random.random() < failure_rate


class SimulatorSettings(models.Model):
    """Base of a service's simulator settings: one row (id "default") in the service's own database."""

    id = models.CharField(primary_key=True, max_length=16, default="default", db_column="_id")
    failure_rate = models.FloatField(default=0.0, db_column="failureRate")
    updated_at = models.DateTimeField(auto_now=True, db_column="updatedAt")

    class Meta:
        abstract = True

    @classmethod
    def current(cls, alias: str) -> Self:
        # Read by every consumer batch that charges or ships: a plain SELECT by key where the backend has it.
        found = bulk_sql.load(alias, cls, ["default"]) if bulk_sql.supported(alias) else []
        return found[0] if found else cls.objects.using(alias).get_or_create(pk="default")[0]  # type: ignore[return-value]

    @classmethod
    def configure(cls, alias: str, **fields: Any) -> Self:
        sim = cls.current(alias)
        for name, value in fields.items():
            setattr(sim, name, value)
        sim.save(using=alias)
        return sim
