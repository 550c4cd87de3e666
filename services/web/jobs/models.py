"""Batch jobs (tables ``jobs`` and ``job_chunks``).

The api creates a job and publishes one message per chunk; the worker stores
each chunk's outputs once (unique job and chunk index) and advances the job in
the same transaction. The columns of ``inference_common.schema`` are the
contract with those services.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models.functions import Now

from inference_common.jobs import stored_outputs
from inference_common.schema import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED


class JobStatus(models.TextChoices):
    """Where a job is; succeeded and failed are final."""

    QUEUED = JOB_QUEUED, "Queued"
    RUNNING = JOB_RUNNING, "Running"
    SUCCEEDED = JOB_SUCCEEDED, "Succeeded"
    FAILED = JOB_FAILED, "Failed"


class Job(models.Model):
    """An asynchronous prediction over many rows, split into chunks."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The (api_key, created_at) index below serves lookups by key too.
    api_key = models.ForeignKey(
        "apikeys.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
        db_index=False,
    )
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="jobs")
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_default=JobStatus.QUEUED
    )
    n_rows = models.IntegerField()
    n_chunks = models.IntegerField()
    chunks_done = models.IntegerField(default=0, db_default=0)
    error = models.TextField(blank=True, db_default="")
    trace_id = models.CharField(max_length=32, blank=True, db_default="")
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())
    completed_at = models.DateTimeField(null=True, blank=True)
    # Django-only columns: batches started from the web UI (/batches/).
    input_name = models.CharField(
        max_length=255, blank=True, db_default="", help_text="File name of an uploaded CSV batch."
    )
    created_by = models.CharField(max_length=150, blank=True, db_default="")

    class Meta:
        db_table = "jobs"
        ordering = ("-created_at",)
        indexes = (models.Index(fields=["api_key", "created_at"], name="jobs_api_key_created_idx"),)
        constraints = (
            models.CheckConstraint(condition=models.Q(status__in=JobStatus.values), name="jobs_status_valid"),
        )

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        """True once the job has succeeded or failed."""
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobChunk(models.Model):
    """The outputs of one chunk of a job, flattened, with their shape.

    Workers store them as float32 bytes (``outputs_f32``); chunks stored before that
    column existed have them as JSON (``outputs``). Read them with
    ``inference_common.jobs.stored_outputs`` (:attr:`values`).
    """

    # The unique (job, chunk_index) constraint indexes job lookups already.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    chunk_index = models.IntegerField()
    row_offset = models.IntegerField(help_text="Index of the chunk's first row in the job input.")
    n_rows = models.IntegerField()
    outputs = models.JSONField(
        null=True,
        blank=True,
        help_text="Outputs flattened in row-major order (chunks stored before outputs_f32).",
    )
    outputs_f32 = models.BinaryField(
        null=True, blank=True, help_text="Outputs as little-endian float32, flattened in row-major order."
    )
    shape = models.JSONField(help_text="Shape to restore the outputs to, e.g. [rows, classes].")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "job_chunks"
        ordering = ("job", "chunk_index")
        constraints = (
            models.UniqueConstraint(fields=["job", "chunk_index"], name="job_chunks_job_chunk_uniq"),
        )

    def __str__(self) -> str:
        return f"{self.job_id} chunk {self.chunk_index}"

    @property
    def values(self) -> list[Any]:
        """The outputs as rows: floats, or lists of class probabilities."""
        return stored_outputs(self.outputs_f32, self.outputs, self.shape).tolist()
