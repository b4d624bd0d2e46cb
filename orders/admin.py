from django.contrib import admin

from orders.models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "total", "created_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id", "correlation_id")
    readonly_fields = ("order_id", "items", "total", "status", "history", "created_at", "updated_at", "correlation_id")
