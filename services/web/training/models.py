"""Training runs (table ``training_runs``): one Celery training job each, with progress."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class RunStatus(models.TextChoices):
    """Where a run is; succeeded and failed are final."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class TrainingRun(models.Model):
    """Train a new version of ``model_name`` from an uploaded CSV (plus review feedback)."""

    model_name = models.CharField(max_length=200)
    dataset = models.FileField(upload_to="training/%Y/%m/%d/", help_text="The uploaded CSV file.")
    label_column = models.CharField(max_length=200)
    objective = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True, help_text="XGBoost parameters and boosting rounds.")
    include_feedback = models.BooleanField(
        default=False, help_text="Add reviewed predictions of this model name as labelled rows."
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    message = models.TextField(blank=True, default="")
    metrics = models.JSONField(default=dict, blank=True)
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="training_runs",
    )
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "training_runs"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"training of {self.model_name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        """True once the run has succeeded or failed."""
        return self.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
