from django.contrib import admin

from inventory.models import Outbox, ProcessedEventRecord, Reservation, Stock
from shopsite.events.admin import register_service_tables


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = ("sku", "available", "reserved", "updated_at")
    list_editable = ("available",)
    search_fields = ("sku",)
    readonly_fields = ("reserved",)


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "reason", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id",)
    readonly_fields = ("order_id", "correlation_id", "items", "status", "reason", "created_at", "updated_at")


register_service_tables(Outbox, ProcessedEventRecord)
