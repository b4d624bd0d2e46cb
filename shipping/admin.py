from django.contrib import admin

from shipping.models import Outbox, ProcessedEventRecord, Shipment, ShippingSimulator
from shopsite.events.admin import register_service_tables


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "carrier", "tracking_id", "reason", "updated_at")
    list_filter = ("status", "carrier")
    search_fields = ("order_id", "tracking_id")
    readonly_fields = [f.name for f in Shipment._meta.fields]


@admin.register(ShippingSimulator)
class ShippingSimulatorAdmin(admin.ModelAdmin):
    list_display = ("id", "outage", "failure_rate", "updated_at")


register_service_tables(Outbox, ProcessedEventRecord)
