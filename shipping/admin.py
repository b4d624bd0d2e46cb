from django import forms
from django.contrib import admin
from django.http import HttpRequest
from pydantic import ValidationError

from shipping import application
from shipping.models import Outbox, ProcessedEventRecord, Shipment, ShippingSimulator
from shopsite.events.admin import register_service_tables


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ("order_id", "status", "carrier", "tracking_id", "reason", "updated_at")
    list_filter = ("status", "carrier")
    search_fields = ("order_id", "tracking_id")
    readonly_fields = [f.name for f in Shipment._meta.fields]


class SimulatorForm(forms.ModelForm):
    """Validated by the body model the API and the dashboard use (shipping.application.SimulatorBody)."""

    class Meta:
        model = ShippingSimulator
        fields = ("outage", "failure_rate")

    def clean(self) -> dict:
        data = super().clean()
        try:
            self.body = application.SimulatorBody(outage=bool(data.get("outage")),
                                                  failureRate=data.get("failure_rate") or 0.0)
        except ValidationError as exc:
            raise forms.ValidationError([e["msg"] for e in exc.errors()]) from None
        return data


@admin.register(ShippingSimulator)
class ShippingSimulatorAdmin(admin.ModelAdmin):
    form = SimulatorForm
    list_display = ("id", "outage", "failure_rate", "updated_at")

    def save_model(self, request: HttpRequest, obj: ShippingSimulator, form: SimulatorForm, change: bool) -> None:
        saved = application.configure_simulator(form.body)
        obj.pk, obj.updated_at = saved.pk, saved.updated_at


register_service_tables(Outbox, ProcessedEventRecord)
