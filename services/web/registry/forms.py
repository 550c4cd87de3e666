"""Forms of the model registry pages."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from registry.models import ModelVersion, Stage
from registry.services import MODEL_EXTENSIONS, RegistryError, validate_metrics, validate_version


class UploadModelForm(forms.Form):
    """A booster saved with ``save_model`` plus the metadata of the new version."""

    name = forms.CharField(max_length=200, help_text="Model name used in the inference URLs.")
    version = forms.CharField(
        max_length=64, required=False, help_text="Leave empty for the next number (1, 2, ...)."
    )
    file = forms.FileField(help_text="XGBoost model saved with Booster.save_model() as .json or .ubj.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    stage = forms.ChoiceField(
        choices=[(Stage.STAGING, "Staging"), (Stage.PRODUCTION, "Production")],
        initial=Stage.STAGING,
        help_text="Production archives the current production version.",
    )
    metrics = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"auc": 0.91, "logloss": 0.23}'}),
        required=False,
        help_text="Optional evaluation metrics: a JSON object of name -> number.",
    )

    def clean_name(self) -> str:
        """Model names appear in URLs: no slashes or surrounding spaces."""
        name = self.cleaned_data["name"].strip()
        if "/" in name or not name:
            raise forms.ValidationError("A model name cannot be empty or contain '/'.")
        return name

    def clean_version(self) -> str | None:
        """An empty version means "the next number"."""
        version = self.cleaned_data["version"].strip()
        if not version:
            return None
        try:
            return validate_version(version)
        except RegistryError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_file(self) -> UploadedFile:
        """Refuse files that are not a saved booster by name, or larger than UPLOAD_MAX_MB."""
        upload: UploadedFile = self.cleaned_data["file"]
        name = upload.name or ""
        if not name.lower().endswith(MODEL_EXTENSIONS):
            raise forms.ValidationError("Upload a booster saved as .json or .ubj.")
        limit = settings.UPLOAD_MAX_MB * 1024 * 1024
        if upload.size is not None and upload.size > limit:
            raise forms.ValidationError(f"The file is larger than the {settings.UPLOAD_MAX_MB} MB limit.")
        return upload

    def clean_metrics(self) -> dict[str, float]:
        """Parse the optional metrics JSON into a name -> number object."""
        text = self.cleaned_data["metrics"].strip()
        if not text:
            return {}
        try:
            return validate_metrics(json.loads(text))
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from exc
        except RegistryError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        """Refuse a version string that the name already has, before the file is stored."""
        data = super().clean()
        name, version = data.get("name"), data.get("version")
        if name and version and ModelVersion.objects.filter(name=name, version=version).exists():
            self.add_error("version", f"{name} version {version} is already registered.")
        return data


class StageForm(forms.Form):
    """One click on the model page: which stage, and a canary's share of traffic."""

    stage = forms.ChoiceField(choices=Stage.choices)
    traffic_percent = forms.IntegerField(min_value=1, max_value=100, required=False)
