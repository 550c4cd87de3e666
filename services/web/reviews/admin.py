"""Admin of review policies (editable) and review items (read-only: decisions go through the queue)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from reviews.models import ReviewItem, ReviewPolicy


@admin.register(ReviewPolicy)
class ReviewPolicyAdmin(admin.ModelAdmin):
    """Policies per model name; the /reviews/policies/ page validates rules against features."""

    list_display = ("model_name", "enabled", "band_low", "band_high", "updated_at", "updated_by")
    search_fields = ("model_name",)
    readonly_fields = ("updated_at", "updated_by")


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    """Browse queued rows; deciding happens on /reviews/ so it is conditional and audited."""

    list_display = (
        "id",
        "prediction",
        "row_index",
        "model_version",
        "score",
        "status",
        "label",
        "decided_by",
    )
    list_filter = ("status", "model_version__name")
    search_fields = ("=prediction__request_id",)
    list_select_related = ("model_version",)
    raw_id_fields = ("prediction", "model_version")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """The worker queues items."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: ReviewItem | None = None) -> bool:
        """Decisions are made in the review queue, with an audit event."""
        return False
