"""Admin for API keys.

Keys are created with ``manage.py create_api_key`` because the raw key must
be shown exactly once to whoever created it; the admin lists, edits limits
and revokes keys, and never shows or edits the stored hash.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from apikeys.forms import key_settings
from apikeys.models import ApiKey
from apikeys.services import revoke_key, update_key
from audit.models import Source
from inference_common.keys import SCOPES

CREATE_HELP = (
    "Keys are created with `python services/web/manage.py create_api_key NAME [--scopes predict,jobs]`, "
    "which prints the raw key once. Only its prefix and SHA-256 digest are stored, "
    "so a key cannot be shown again here: revoke a lost key and create a new one."
)


class ApiKeyForm(forms.ModelForm):
    """Edit scopes as checkboxes of the known scopes instead of raw JSON."""

    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="What the key may do.",
    )

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "rate_limit_per_minute")

    def clean_scopes(self) -> list[str]:
        """Store scopes sorted, as ``inference_common.keys.parse_scopes`` does."""
        return sorted(set(self.cleaned_data["scopes"]))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """List, edit and revoke keys; creation happens on the command line."""

    form = ApiKeyForm
    list_display = (
        "name",
        "prefix",
        "scopes",
        "rate_limit_per_minute",
        "revoked",
        "last_used_at",
        "created_at",
    )
    list_filter = ("revoked",)
    search_fields = ("name", "prefix")
    ordering = ("name", "prefix")
    # key_hash is deliberately absent from every field list.
    fieldsets = (
        (None, {"fields": ("name", "prefix", "scopes", "rate_limit_per_minute"), "description": CREATE_HELP}),
        ("Status", {"fields": ("revoked", "revoked_at", "last_used_at", "created_at", "created_by")}),
    )
    readonly_fields = ("prefix", "revoked", "revoked_at", "last_used_at", "created_at", "created_by")
    actions = ("revoke_keys",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Keys are created with the create_api_key command, which shows the raw key once."""
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Show how keys are created above the list."""
        return super().changelist_view(request, {"subtitle": CREATE_HELP, **(extra_context or {})})

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        """Keys are revoked, not deleted: the audit trail and prediction records refer to them."""
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        """Apply edits through ``update_key`` so that they are validated and audited."""
        # form.save(commit=False) already copied the new values onto obj; re-read
        # the stored row so update_key sees what changed.
        stored = ApiKey.objects.get(pk=obj.pk)
        update_key(
            stored, **key_settings(form.cleaned_data), actor=request.user.get_username(), source=Source.ADMIN
        )

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        """Revoke keys; already revoked ones keep their original revocation time."""
        actor = request.user.get_username()
        revoked = sum(1 for api_key in queryset if revoke_key(api_key, actor=actor, source=Source.ADMIN))
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        """Revoking needs apikeys.revoke_apikey, like the web pages."""
        return request.user.has_perm("apikeys.revoke_apikey")
