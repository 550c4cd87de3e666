"""The batch upload form: a CSV file and the model version to run it through."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from jobs.csvdata import NumericTable
from jobs.services import BatchError, read_batch, resolve_model
from registry.models import ModelVersion


def model_name_choices() -> list[tuple[str, str]]:
    """Registered model names, for the model select."""
    names = ModelVersion.objects.order_by("name").values_list("name", flat=True).distinct()
    return [(name, name) for name in names]


class BatchForm(forms.Form):
    """Upload a CSV; the file is validated against the chosen version's feature names."""

    model_name = forms.ChoiceField(label="Model")
    version = forms.CharField(
        required=False, max_length=64, help_text="Leave empty to use the production version."
    )
    file = forms.FileField(
        label="CSV file",
        help_text="A header line naming every feature of the model; extra columns are ignored and an "
        "'id' column is copied to the results.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model_name"].choices = model_name_choices()
        self.model_version: ModelVersion | None = None
        self.table: NumericTable | None = None

    def clean_file(self) -> Any:
        """Refuse files over ``UPLOAD_MAX_MB`` before reading them."""
        upload = self.cleaned_data["file"]
        limit = settings.UPLOAD_MAX_MB * 1024 * 1024
        if upload.size > limit:
            raise forms.ValidationError(f"the file is larger than {settings.UPLOAD_MAX_MB} MB")
        return upload

    def clean(self) -> dict[str, Any]:
        """Resolve the model version and read the file's feature columns (first bad cell is reported)."""
        cleaned = super().clean()
        name, upload = cleaned.get("model_name"), cleaned.get("file")
        if not name:
            return cleaned
        try:
            self.model_version = resolve_model(name, cleaned.get("version", "").strip())
        except BatchError as exc:
            self.add_error("version", str(exc))
            return cleaned
        if upload is not None:
            try:
                self.table = read_batch(upload, self.model_version)
            except BatchError as exc:
                self.add_error("file", str(exc))
        return cleaned
