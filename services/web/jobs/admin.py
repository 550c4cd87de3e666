"""Admin for batch jobs (inspect, fail stuck ones) and their chunks (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from jobs.models import Job, JobChunk, JobStatus


class JobChunkInline(admin.TabularInline):
    """The chunks of a job, without their (possibly large) outputs."""

    model = JobChunk
    fields = ("chunk_index", "row_offset", "n_rows", "shape", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        """Chunks are written by the worker only."""
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Inspect jobs; the only change allowed is failing a job that is stuck."""

    list_display = (
        "id",
        "model_version",
        "api_key",
        "status",
        "n_rows",
        "progress",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "model_version__name")
    search_fields = ("=id", "=trace_id")
    date_hierarchy = "created_at"
    list_select_related = ("model_version", "api_key")
    show_full_result_count = False
    inlines = (JobChunkInline,)
    actions = ("mark_failed",)

    @admin.display(description="chunks done")
    def progress(self, job: Job) -> str:
        """Chunks done out of the total."""
        return f"{job.chunks_done}/{job.n_chunks}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Jobs are created through the inference API."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        """Job rows belong to the api and worker; the admin only views them."""
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """Offer the fail action to users who may change jobs, even though the form is read-only."""
        actions = super().get_actions(request)
        if not request.user.has_perm("jobs.change_job"):
            actions.pop("mark_failed", None)
        return actions

    @admin.action(description="Mark the selected unfinished jobs as failed")
    def mark_failed(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Fail queued or running jobs, e.g. after their messages were dead-lettered.

        Clients polling the job then get a final answer instead of waiting forever;
        late chunks are still stored but no longer change the status.
        """
        now = timezone.now()
        count = queryset.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).update(
            status=JobStatus.FAILED,
            error=f"marked failed by {request.user.get_username()} in the admin",
            updated_at=now,
            completed_at=now,
        )
        self.message_user(request, f"Marked {count} job(s) as failed.", messages.SUCCESS)


@admin.register(JobChunk)
class JobChunkAdmin(admin.ModelAdmin):
    """Read-only view of stored chunk outputs."""

    list_display = ("job", "chunk_index", "row_offset", "n_rows", "shape", "created_at")
    # outputs_f32 is bytes (not a form field): its values are shown decoded.
    readonly_fields = ("first_outputs",)
    search_fields = ("=job__id",)
    list_select_related = ("job",)
    show_full_result_count = False
    raw_id_fields = ("job",)

    @admin.display(description="First outputs")
    def first_outputs(self, obj: JobChunk) -> str:
        """The chunk's first rows of outputs, whichever column holds them."""
        values = obj.values
        shown = ", ".join(str(value) for value in values[: self.FIRST_OUTPUTS])
        return f"{shown}, ... ({len(values)} rows)" if len(values) > self.FIRST_OUTPUTS else shown

    FIRST_OUTPUTS = 20

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Chunks are written by the worker only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobChunk | None = None) -> bool:
        """Chunk outputs are results; they are never edited."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JobChunk | None = None) -> bool:
        """Chunks go with their job."""
        return False
