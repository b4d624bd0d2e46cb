from django.contrib import admin

from django.http import HttpRequest

from inventory import application
from inventory.models import Outbox, ProcessedEventRecord, Reservation, Stock
from shopsite.events.admin import register_service_tables


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    """Stock changes go through the inventory service's own code (application.set_available), which
    sets `available` only: saving the whole row could overwrite units reserved meanwhile."""

    list_display = ("sku", "available", "reserved", "updated_at")
    list_editable = ("available",)
    search_fields = ("sku",)
    fields = ("sku", "available", "reserved", "updated_at")
    readonly_fields = ("reserved", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Stock | None = None) -> tuple[str, ...]:
        return (*self.readonly_fields, "sku") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Stock, form: object, change: bool) -> None:
        saved = application.set_available(obj.sku, obj.available)
        obj.reserved, obj.updated_at = saved.reserved, saved.updated_at

    def has_delete_permission(self, request: HttpRequest, obj: Stock | None = None) -> bool:
        return False


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "reason", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id",)
    readonly_fields = ("order_id", "correlation_id", "items", "status", "reason", "created_at", "updated_at")


register_service_tables(Outbox, ProcessedEventRecord)
