"""Read-only admin for the prediction audit log."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from predictions.models import PredictionRecord


@admin.register(PredictionRecord)
class PredictionRecordAdmin(admin.ModelAdmin):
    """Browse and search audit rows; nobody edits or deletes the audit log here."""

    list_display = (
        "created_at",
        "request_id",
        "model_version",
        "api_key",
        "protocol",
        "n_rows",
        "status",
        "latency_ms",
        "batch_size",
        "device",
        "cache_hit",
        "trace_id",
    )
    list_filter = ("status", "protocol", "device", "cache_hit", "model_version__name")
    search_fields = ("=request_id", "=trace_id", "=job__id")
    date_hierarchy = "created_at"
    list_select_related = ("model_version", "api_key")
    # The audit table grows without bound: skip the COUNT(*) of the whole
    # table on every page and the per-row FK dropdowns on the detail page.
    show_full_result_count = False
    raw_id_fields = ("model_version", "api_key", "job")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Audit rows are written by the worker only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: PredictionRecord | None = None) -> bool:
        """Audit rows are immutable."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PredictionRecord | None = None) -> bool:
        """Audit rows are not deleted from the admin (retention is a database job)."""
        return False
