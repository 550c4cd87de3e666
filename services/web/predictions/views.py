"""Pages of the prediction audit log: search, detail and CSV export."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.pages import filter_query, paginate
from predictions.filters import PredictionFilterForm
from predictions.models import PredictionRecord

#: Most rows one CSV export returns; narrow the filters for more.
EXPORT_MAX_ROWS = 100_000
#: Rows fetched per database round trip while streaming the export.
EXPORT_CHUNK_SIZE = 2_000
#: Outputs longer than this (as pretty JSON) are cut on the detail page.
OUTPUTS_MAX_CHARS = 20_000
#: First characters a spreadsheet treats as a formula (CSV/formula injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

EXPORT_COLUMNS = (
    "created_at",
    "request_id",
    "model",
    "version",
    "route",
    "shadow_of",
    "api_key_name",
    "api_key_prefix",
    "protocol",
    "n_rows",
    "status",
    "error",
    "latency_ms",
    "predict_ms",
    "batch_size",
    "device",
    "trace_id",
    "job_id",
    "inputs_digest",
    "outputs_digest",
    "cache_hit",
)


def _records(form: PredictionFilterForm) -> QuerySet[PredictionRecord]:
    queryset = PredictionRecord.objects.select_related("model_version", "api_key").order_by(
        "-created_at", "-id"
    )
    return form.filter(queryset)


@require_GET
@permission_required("predictions.view_predictionrecord", raise_exception=True)
def prediction_list(request: HttpRequest) -> HttpResponse:
    """Search the audit log, newest first, one page at a time."""
    form = PredictionFilterForm(request.GET or None)
    return render(
        request,
        "predictions/list.html",
        {
            "form": form,
            "page": paginate(request, _records(form)),
            "query": filter_query(request),
            "can_export": request.user.has_perm("predictions.export_predictionrecord"),
        },
    )


def trace_url(trace_id: str) -> str:
    """Link to ``trace_id`` in the configured trace UI, or "" when none is configured."""
    template = settings.TRACE_UI_URL
    if not template or not trace_id:
        return ""
    return template.format(trace_id=trace_id)


@require_GET
@permission_required("predictions.view_predictionrecord", raise_exception=True)
def prediction_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    """Everything stored about one request, with links to its trace, job, shadow copies and reviews."""
    record = get_object_or_404(
        PredictionRecord.objects.select_related("model_version", "api_key", "job"), request_id=request_id
    )
    outputs = "" if record.outputs is None else json.dumps(record.outputs, indent=2)
    truncated = len(outputs) > OUTPUTS_MAX_CHARS
    primary = None
    if record.shadow_of:
        primary = PredictionRecord.objects.filter(request_id=record.shadow_of).first()
    shadows = PredictionRecord.objects.filter(shadow_of=record.request_id).select_related("model_version")
    return render(
        request,
        "predictions/detail.html",
        {
            "record": record,
            "outputs": outputs[:OUTPUTS_MAX_CHARS],
            "outputs_truncated": truncated,
            "primary": primary,
            "shadows": shadows,
            "review_items": record.review_items.select_related("model_version").order_by("row_index"),
            "trace_url": trace_url(record.trace_id),
        },
    )


def safe_cell(value: Any) -> Any:
    """Quote text a spreadsheet would run as a formula; numbers and None pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose ``write`` returns the line, for csv.writer over a stream."""

    def write(self, value: str) -> str:
        return value


def _export_rows(queryset: QuerySet[PredictionRecord]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for record in queryset[:EXPORT_MAX_ROWS].iterator(chunk_size=EXPORT_CHUNK_SIZE):
        version, key = record.model_version, record.api_key
        row = (
            record.created_at.isoformat(),
            record.request_id,
            version.name,
            version.version,
            record.route,
            record.shadow_of,
            key.name if key else "",
            key.prefix if key else "",
            record.protocol,
            record.n_rows,
            record.status,
            record.error,
            record.latency_ms,
            record.predict_ms,
            record.batch_size,
            record.device,
            record.trace_id,
            str(record.job_id) if record.job_id else "",
            record.inputs_digest,
            record.outputs_digest,
            record.cache_hit,
        )
        yield writer.writerow([safe_cell(value) for value in row])


@require_GET
@permission_required("predictions.export_predictionrecord", raise_exception=True)
def prediction_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered audit log as CSV, streamed so a large export never sits in memory."""
    form = PredictionFilterForm(request.GET or None)
    response = StreamingHttpResponse(_export_rows(_records(form)), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="predictions-{stamp}.csv"'
    response["X-Export-Max-Rows"] = str(EXPORT_MAX_ROWS)
    return response
