"""The training form: data, label, objective and a few XGBoost parameters."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings

from registry.models import Stage
from training.trainer import OBJECTIVES, TrainingError, check_labels, read_dataset

#: Model names appear in inference URLs: keep them path-safe.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class TrainingForm(forms.Form):
    """Start a training run; the CSV is read completely on submit so errors show at once."""

    model_name = forms.CharField(
        max_length=200, help_text="A new name, or an existing one for a new version."
    )
    dataset = forms.FileField(label="Training data (CSV)", help_text="Header line, numeric columns.")
    label_column = forms.CharField(max_length=200, initial="label")
    objective = forms.ChoiceField(choices=[(name, name) for name in OBJECTIVES])
    num_boost_round = forms.IntegerField(label="Boosting rounds", min_value=1, max_value=5000, initial=100)
    max_depth = forms.IntegerField(min_value=1, max_value=16, initial=6)
    eta = forms.FloatField(label="Learning rate (eta)", min_value=0.001, max_value=1.0, initial=0.3)
    validation_fraction = forms.FloatField(min_value=0.05, max_value=0.5, initial=0.2)
    include_feedback = forms.BooleanField(
        label="Include reviewed feedback",
        required=False,
        help_text="Add the decided review items of this model name as labelled rows.",
    )
    stage = forms.ChoiceField(
        label="Register as",
        choices=[(Stage.STAGING, "staging"), (Stage.PRODUCTION, "production")],
        initial=Stage.STAGING,
    )

    def clean_model_name(self) -> str:
        """A path-safe model name."""
        name = self.cleaned_data["model_name"].strip()
        if not NAME_PATTERN.match(name):
            raise forms.ValidationError(
                "use letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return name

    def clean_dataset(self) -> Any:
        """Refuse files over ``UPLOAD_MAX_MB`` before reading them."""
        upload = self.cleaned_data["dataset"]
        if upload.size > settings.UPLOAD_MAX_MB * 1024 * 1024:
            raise forms.ValidationError(f"the file is larger than {settings.UPLOAD_MAX_MB} MB")
        return upload

    def clean(self) -> dict[str, Any]:
        """Check the header (label present, feature names usable), every cell and the labels."""
        cleaned = super().clean()
        upload, label, objective = (cleaned.get(key) for key in ("dataset", "label_column", "objective"))
        if upload is None or not label or not objective:
            return cleaned
        try:
            data = read_dataset(upload, label.strip())
            check_labels(objective, data.labels)
        except TrainingError as exc:
            self.add_error("dataset", str(exc))
        upload.seek(0)
        return cleaned

    def params(self) -> dict[str, Any]:
        """The run's parameters, as stored on the TrainingRun."""
        keys = ("num_boost_round", "max_depth", "eta", "validation_fraction", "stage")
        return {key: self.cleaned_data[key] for key in keys}
