"""Admin for the shared tables; each service app registers its own proxies with these.

Read-only: a deleted outbox row is an event never published, a deleted
processed_events row an event applied twice. The one write is "publish
again", which consumers deduplicate.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from shopsite.events.tasks import publish_soon
from shopsite.ops.permissions import OPERATE


class ParkedFilter(admin.SimpleListFilter):
    """Rows the broker can never take (e.g. too large): set aside by the relay, waiting for an operator."""

    title = "parked"
    parameter_name = "parked"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "parked"), ("no", "not parked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(parked_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(parked_at__isnull=True)
        return queryset


class OutboxAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "key", "status", "created_at", "dispatched_at", "attempts", "short_error")
    list_filter = ("dispatched", ParkedFilter, "type")
    search_fields = ("key", "event_id")
    ordering = ("-id",)
    readonly_fields = ("event_id", "type", "topic", "key", "payload", "created_at", "dispatched", "dispatched_at",
                       "attempts", "last_error", "parked_at")
    actions = ["redispatch"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_redispatch_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(OPERATE)

    @admin.display(description="error")
    def short_error(self, obj: object) -> str:
        return (getattr(obj, "last_error", "") or "")[:120]

    @admin.action(description="Publish again (mark undispatched, unpark; consumers drop duplicates)",
                  permissions=["redispatch"])
    def redispatch(self, request: HttpRequest, queryset: QuerySet) -> None:
        alias = queryset.db
        count = queryset.update(dispatched=False, dispatched_at=None, parked_at=None)
        publish_soon(alias)
        self.message_user(request, f"{count} message(s) queued for publishing from {alias}.", messages.SUCCESS)


class ProcessedEventAdmin(admin.ModelAdmin):
    list_display = ("id", "consumer", "event_id", "at")
    search_fields = ("event_id",)
    ordering = ("-at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def register_service_tables(outbox: type, processed: type) -> None:
    admin.site.register(outbox, OutboxAdmin)
    admin.site.register(processed, ProcessedEventAdmin)
