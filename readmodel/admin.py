from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from readmodel import application
from readmodel.models import DeadLetter, OrderProjection, Outbox, ProcessedEventRecord
from shopsite.events.admin import register_service_tables


@admin.register(OrderProjection)
class OrderProjectionAdmin(admin.ModelAdmin):
    list_display = ("order_id", "current_status", "total", "created_at", "updated_at")
    list_filter = ("current_status",)
    search_fields = ("order_id", "correlation_id")
    ordering = ("-created_at",)
    readonly_fields = [f.name for f in OrderProjection._meta.fields]


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("id", "original_type", "order_id", "error", "status", "replay_count", "created_at")
    list_filter = ("status", "original_type", "source_topic")
    search_fields = ("id", "order_id", "original_event_id", "error")
    ordering = ("-created_at",)
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["replay"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Replay (publish the original event to its topic again)")
    def replay(self, request: HttpRequest, queryset: QuerySet) -> None:
        for letter in queryset:
            try:
                application.replay_dead_letter(letter.id)
                self.message_user(request, f"replayed {letter.id}", messages.SUCCESS)
            except application.ReplayRefused as exc:
                self.message_user(request, f"{letter.id}: {exc}", messages.ERROR)


register_service_tables(Outbox, ProcessedEventRecord)
