from django.contrib import admin

from payment.models import Outbox, Payment, PaymentSimulator, ProcessedEventRecord
from shopsite.events.admin import register_service_tables


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "total", "amount", "refunded_amount", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id", "auth_id", "refund_id")
    readonly_fields = [f.name for f in Payment._meta.fields]


@admin.register(PaymentSimulator)
class PaymentSimulatorAdmin(admin.ModelAdmin):
    list_display = ("id", "decline_above", "failure_rate", "updated_at")


register_service_tables(Outbox, ProcessedEventRecord)
