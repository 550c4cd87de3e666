"""Forms of a model name's response cache policy: the model page's and the admin's."""

from __future__ import annotations

from typing import ClassVar

from django import forms

from registry.models import ModelVersion
from responsecache.models import ResponseCachePolicy


class ResponseCachePolicyForm(forms.ModelForm):
    """On or off, TTL and size bound; the model name comes from the page."""

    class Meta:
        model = ResponseCachePolicy
        fields = ("enabled", "ttl_s", "max_entries")
        labels: ClassVar[dict[str, str]] = {"enabled": "Answer repeated inputs from the cache"}


class AdminResponseCachePolicyForm(forms.ModelForm):
    """The admin's form, which also names the model (one that is registered)."""

    class Meta:
        model = ResponseCachePolicy
        fields = ("model_name", "enabled", "ttl_s", "max_entries")

    def clean_model_name(self) -> str:
        """A policy is for a model name that has registered versions."""
        name = self.cleaned_data["model_name"].strip()
        if not ModelVersion.objects.filter(name=name).exists():
            raise forms.ValidationError(f"No model named {name!r} is registered.")
        return name
