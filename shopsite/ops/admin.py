"""API tokens in the admin: issued here (the token is shown once, in a message), listed, revoked."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from shopsite.ops import tokens
from shopsite.ops.models import ALL_SCOPES, ApiToken


class IssueTokenForm(forms.ModelForm):
    scopes_text = forms.CharField(label="Scopes", initial=ALL_SCOPES, required=True,
                                  help_text="permissions the token may use, comma separated "
                                            "(e.g. ops.place_orders); * for every permission of the user")
    days = forms.IntegerField(label="Expires in days", initial=90, min_value=0,
                              help_text="0: never expires")

    class Meta:
        model = ApiToken
        fields = ("user", "name", "outlives_password")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "name", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("id", "name", "user__username")
    actions = ["revoke"]
    readonly_fields = ("id", "user", "name", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at",
                       "outlives_password")
    exclude = ("digest", "password_stamp")

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, **kwargs):  # type: ignore[override]
        if obj is None:
            kwargs["form"] = IssueTokenForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None):  # type: ignore[override]
        if obj is None:
            return ("user", "name", "scopes_text", "days", "outlives_password")
        return self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # a token is issued and revoked, never edited

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm, change: bool) -> None:
        days = form.cleaned_data["days"]
        scopes = [s.strip() for s in form.cleaned_data["scopes_text"].split(",") if s.strip()]
        issued = tokens.issue(obj.user, name=obj.name, scopes=scopes,
                              expires_in=timedelta(days=days) if days else None,
                              outlives_password=obj.outlives_password)
        obj.pk = issued.token.pk
        obj._state.adding = False
        self.message_user(request, f"Token for {obj.user}: {issued.plaintext} (copy it now: it is shown only once).",
                          messages.WARNING)

    @admin.action(description="Revoke selected tokens", permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = tokens.revoke(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
