"""Route each service app to its own database.

Django's own apps (auth, sessions, admin, contenttypes) live in `default`.
The shared `events` app (outbox, processed_events) is migrated into every
service database and always used with an explicit `.using(alias)`; reading
it without an alias is a bug, so the router refuses to guess.
"""

from __future__ import annotations

from typing import Any

from shopsite.services import BY_APP_LABEL, SERVICE_ALIASES

SHARED_APP = "events"


class ServiceRouter:
    def _alias_for(self, model: Any) -> str | None:
        service = BY_APP_LABEL.get(model._meta.app_label)
        return service.alias if service else None

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self._alias_for(model)

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return self._alias_for(model)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return obj1._state.db == obj2._state.db

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        if app_label == SHARED_APP:
            return db in SERVICE_ALIASES
        service = BY_APP_LABEL.get(app_label)
        if service is not None:
            return db == service.alias
        return db == "default"
