"""Forms of the API key pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from apikeys.models import DEFAULT_RATE_LIMIT_PER_MINUTE
from inference_common.keys import SCOPES


class KeyForm(forms.Form):
    """Name, scopes and rate limit of a key (creating or editing)."""

    name = forms.CharField(max_length=100, help_text="Who or what uses this key.")
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        initial=list(SCOPES),
        help_text="predict: synchronous predictions; jobs: asynchronous batch jobs.",
    )
    rate_limit_per_minute = forms.IntegerField(
        min_value=0,
        initial=DEFAULT_RATE_LIMIT_PER_MINUTE,
        label="Rate limit per minute",
        help_text="Requests per minute; 0 means unlimited.",
    )

    def clean_name(self) -> str:
        """Names are shown in lists and logs: no surrounding spaces."""
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name

    def clean_scopes(self) -> list[str]:
        """Store scopes sorted, as ``inference_common.keys.parse_scopes`` does."""
        return sorted(set(self.cleaned_data["scopes"]))


def key_settings(cleaned_data: Mapping[str, Any]) -> dict[str, Any]:
    """The name, scopes and rate limit of a validated key form, as ``issue_key``/``update_key`` take them."""
    return {field: cleaned_data[field] for field in ("name", "scopes", "rate_limit_per_minute")}
