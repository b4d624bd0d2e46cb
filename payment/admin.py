from django import forms
from django.contrib import admin
from django.http import HttpRequest
from pydantic import ValidationError

from payment import application
from payment.models import Outbox, Payment, PaymentSimulator, ProcessedEventRecord
from shopsite.events.admin import register_service_tables


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "total", "amount", "refunded_amount", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_id", "auth_id", "refund_id")
    readonly_fields = [f.name for f in Payment._meta.fields]


class SimulatorForm(forms.ModelForm):
    """Validated by the body model the API and the dashboard use (payment.application.SimulatorBody)."""

    class Meta:
        model = PaymentSimulator
        fields = ("decline_above", "failure_rate")

    def clean(self) -> dict:
        data = super().clean()
        try:
            self.body = application.SimulatorBody(declineAbove=data.get("decline_above"),
                                                  failureRate=data.get("failure_rate") or 0.0)
        except ValidationError as exc:
            raise forms.ValidationError([e["msg"] for e in exc.errors()]) from None
        return data


@admin.register(PaymentSimulator)
class PaymentSimulatorAdmin(admin.ModelAdmin):
    form = SimulatorForm
    list_display = ("id", "decline_above", "failure_rate", "updated_at")

    def save_model(self, request: HttpRequest, obj: PaymentSimulator, form: SimulatorForm, change: bool) -> None:
        saved = application.configure_simulator(form.body)
        obj.pk, obj.updated_at = saved.pk, saved.updated_at


register_service_tables(Outbox, ProcessedEventRecord)
