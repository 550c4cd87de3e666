"""Forms of the review pages: a decision, and a model name's review policy."""

from __future__ import annotations

import json
import math
from typing import Any

from django import forms

from registry.models import ModelVersion
from reviews.models import ReviewPolicy
from reviews.services import feature_names_of, validate_rules


class DecisionForm(forms.Form):
    """Accept the model's answer, or override it with a numeric label and a reason."""

    ACCEPT, OVERRIDE = "accept", "override"

    decision = forms.ChoiceField(choices=[(ACCEPT, "Accept"), (OVERRIDE, "Override")])
    label = forms.FloatField(required=False, help_text="The correct label (a number).")
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_label(self) -> float | None:
        """NaN and infinity are numbers to Python but not labels to train on."""
        label = self.cleaned_data.get("label")
        if label is not None and not math.isfinite(label):
            raise forms.ValidationError("The label must be a finite number.")
        return label

    def clean(self) -> dict[str, Any]:
        """An override needs both a label and a reason; accepting needs neither."""
        data = super().clean() or {}
        if data.get("decision") == self.OVERRIDE:
            if data.get("label") is None and "label" not in self.errors:
                self.add_error("label", "An override needs the correct label.")
            if not (data.get("reason") or "").strip():
                self.add_error("reason", "Say why the model's answer is wrong.")
        return data


class ReviewPolicyForm(forms.ModelForm):
    """Band and rules of one model name; rules are edited as JSON."""

    rules_json = forms.CharField(
        label="Rules (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "mono"}),
        help_text='A list like [{"field": "score", "op": ">=", "value": 0.9}]; field is "score" or a '
        "feature name; op is one of < <= > >= == !=.",
    )

    class Meta:
        model = ReviewPolicy
        fields = ("model_name", "enabled", "band_low", "band_high")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Show the stored rules as indented JSON; the model name is fixed once a policy exists."""
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["rules_json"] = json.dumps(self.instance.rules or [], indent=2)
        if self.instance.pk:
            self.fields["model_name"].disabled = True

    def clean_model_name(self) -> str:
        """A policy is for a model name that has registered versions (their features check the rules)."""
        name = self.cleaned_data["model_name"].strip()
        if not ModelVersion.objects.filter(name=name).exists():
            raise forms.ValidationError(f"No model named {name!r} is registered.")
        return name

    def clean(self) -> dict[str, Any]:
        """Check the band is ordered and the rules are well formed for this model's features."""
        data = super().clean() or {}
        low, high = data.get("band_low"), data.get("band_high")
        if low is not None and high is not None and low > high:
            self.add_error("band_high", "The band's high end must not be below its low end.")
        name = data.get("model_name")
        text = (data.get("rules_json") or "").strip() or "[]"
        try:
            rules = json.loads(text)
        except json.JSONDecodeError as exc:
            self.add_error("rules_json", f"Not valid JSON: {exc.msg} (line {exc.lineno}).")
            return data
        if name:
            features: set[str] = set()
            for version in ModelVersion.objects.filter(name=name):
                features.update(feature_names_of(version))
            try:
                data["rules"] = validate_rules(rules, features)
            except forms.ValidationError as exc:
                self.add_error("rules_json", exc)
        return data

    def save(self, commit: bool = True) -> ReviewPolicy:
        """Store the validated rules with the other fields."""
        self.instance.rules = self.cleaned_data.get("rules", [])
        return super().save(commit=commit)
