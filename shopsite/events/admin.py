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


class OutboxAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "key", "dispatched", "created_at", "dispatched_at", "attempts")
    list_filter = ("dispatched", "type")
    search_fields = ("key", "event_id")
    ordering = ("-id",)
    readonly_fields = ("event_id", "type", "topic", "key", "payload", "created_at", "dispatched", "dispatched_at",
                       "attempts", "last_error")
    actions = ["redispatch"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_redispatch_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(OPERATE)

    @admin.action(description="Publish again (mark undispatched; consumers drop duplicates)",
                  permissions=["redispatch"])
    def redispatch(self, request: HttpRequest, queryset: QuerySet) -> None:
        alias = queryset.db
        count = queryset.update(dispatched=False, dispatched_at=None)
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
