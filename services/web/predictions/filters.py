"""The filter form of the prediction audit log, shared by the list page and the CSV export."""

from __future__ import annotations

import datetime as dt
import re

from django import forms
from django.db.models import Q, QuerySet

from inference_common.schema import ROUTES
from predictions.models import PredictionRecord

#: Statuses the worker writes (``inference_worker.batching``).
STATUSES = ("ok", "error")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
#: Values of the "answered by" filter (``cache_hit`` false or true).
ANSWERED_BY_WORKER, ANSWERED_BY_CACHE = "worker", "cache"


class PredictionFilterForm(forms.Form):
    """GET parameters of /predictions/ and /predictions/export.csv; every field is optional."""

    model = forms.CharField(required=False, max_length=200, label="Model")
    version = forms.CharField(required=False, max_length=64, label="Version")
    key = forms.CharField(required=False, max_length=100, label="API key", help_text="Name or prefix.")
    status = forms.ChoiceField(required=False, choices=[("", "any"), *((s, s) for s in STATUSES)])
    route = forms.ChoiceField(required=False, choices=[("", "any"), *((r, r) for r in ROUTES)])
    answered_by = forms.ChoiceField(
        required=False,
        label="Answered by",
        choices=[("", "any"), (ANSWERED_BY_WORKER, "a worker"), (ANSWERED_BY_CACHE, "the response cache")],
    )
    since = forms.DateTimeField(
        required=False,
        label="From (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = forms.DateTimeField(
        required=False,
        label="To (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    trace_id = forms.CharField(required=False, max_length=32, label="Trace id")
    request_id = forms.CharField(required=False, max_length=80, label="Request id")

    def clean_trace_id(self) -> str:
        """A trace id is 32 lowercase hex digits (W3C trace context); anything else is a typo."""
        value = self.cleaned_data["trace_id"].strip().lower()
        if value and not _TRACE_ID.match(value):
            raise forms.ValidationError("A trace id is 32 hexadecimal digits.")
        return value

    def clean_since(self) -> dt.datetime | None:
        """The browser sends a naive local-looking time; the page states it is UTC."""
        return _as_utc(self.cleaned_data["since"])

    def clean_until(self) -> dt.datetime | None:
        """See :meth:`clean_since`."""
        return _as_utc(self.cleaned_data["until"])

    def clean(self) -> dict[str, object]:
        """Refuse a time range that ends before it starts."""
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "The end of the range is before its start.")
        return data

    def filter(self, queryset: QuerySet[PredictionRecord]) -> QuerySet[PredictionRecord]:
        """Apply the filters to ``queryset``; an invalid form matches nothing rather than everything."""
        if not self.is_bound:
            return queryset
        if not self.is_valid():
            return queryset.none()
        data = self.cleaned_data
        if data.get("model"):
            queryset = queryset.filter(model_version__name=data["model"].strip())
        if data.get("version"):
            queryset = queryset.filter(model_version__version=data["version"].strip())
        if data.get("key"):
            key = data["key"].strip()
            queryset = queryset.filter(Q(api_key__name=key) | Q(api_key__prefix=key))
        if data.get("status"):
            queryset = queryset.filter(status=data["status"])
        if data.get("route"):
            queryset = queryset.filter(route=data["route"])
        if data.get("answered_by"):
            queryset = queryset.filter(cache_hit=data["answered_by"] == ANSWERED_BY_CACHE)
        if data.get("since"):
            queryset = queryset.filter(created_at__gte=data["since"])
        if data.get("until"):
            queryset = queryset.filter(created_at__lte=data["until"])
        if data.get("trace_id"):
            queryset = queryset.filter(trace_id=data["trace_id"])
        if data.get("request_id"):
            queryset = queryset.filter(request_id=data["request_id"].strip())
        return queryset


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
