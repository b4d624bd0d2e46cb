from django.contrib import admin

from orders.models import Order, Outbox, ProcessedEventRecord
from shopsite.events.admin import register_service_tables


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "total", "created_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id", "correlation_id")
    ordering = ("-created_at",)
    readonly_fields = ("order_id", "items", "total", "status", "history", "created_at", "updated_at", "correlation_id")


register_service_tables(Outbox, ProcessedEventRecord)
