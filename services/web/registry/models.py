"""Registered model versions (table ``model_versions``).

The columns listed in ``inference_common.schema.model_versions`` are read by
the api and worker through SQLAlchemy; they must keep their names, types and
nullability. Columns only Django uses have a database default so that rows
inserted without them stay valid.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from inference_common.schema import (
    STAGE_ARCHIVED,
    STAGE_CANARY,
    STAGE_PRODUCTION,
    STAGE_SHADOW,
    STAGE_STAGING,
)


class Stage(models.TextChoices):
    """Lifecycle stage of a version; ``production`` serves unversioned requests.

    A ``canary`` takes ``traffic_percent`` of the unversioned requests; a
    ``shadow`` receives a copy of each one and its answers are only recorded.
    """

    PRODUCTION = STAGE_PRODUCTION, "Production"
    CANARY = STAGE_CANARY, "Canary"
    SHADOW = STAGE_SHADOW, "Shadow"
    STAGING = STAGE_STAGING, "Staging"
    ARCHIVED = STAGE_ARCHIVED, "Archived"


#: Stages of which a model name has at most one version at a time.
SINGLE_STAGES = (Stage.PRODUCTION, Stage.CANARY, Stage.SHADOW)


class ModelVersion(models.Model):
    """One immutable XGBoost artifact registered under a model name and version."""

    name = models.CharField(max_length=200, help_text="Model name used in the inference URLs.")
    version = models.CharField(max_length=64, help_text="Version string, unique per model name.")
    stage = models.CharField(
        max_length=16,
        choices=Stage.choices,
        default=Stage.STAGING,
        db_default=Stage.STAGING,
        help_text="At most one version per name is in production.",
    )
    artifact_path = models.CharField(
        max_length=500, help_text="File name of the artifact, relative to MODEL_STORE."
    )
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the artifact; the worker verifies it.")
    feature_names = models.JSONField(default=list, help_text="Input feature names, in column order.")
    n_features = models.IntegerField(help_text="Number of input columns the model expects.")
    objective = models.CharField(max_length=64, help_text="XGBoost objective, e.g. binary:logistic.")
    n_outputs = models.IntegerField(
        default=1, db_default=1, help_text="Outputs per row (classes for multi:softprob)."
    )
    traffic_percent = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        help_text="Share (0-100) of unversioned requests routed to this version while it is the canary.",
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    baseline = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="Drift baseline (inference_common.drift): per-feature and output bins and shares, "
        "from the training data, a --baseline file, or the first window the workers served.",
    )
    # Django-only columns.
    description = models.TextField(blank=True, db_default="")
    created_by = models.CharField(max_length=150, blank=True, db_default="")
    metrics = models.JSONField(
        default=dict,
        db_default=models.Value({}, output_field=models.JSONField()),
        blank=True,
        help_text="Evaluation metrics, e.g. from the training job's hold-out set.",
    )
    stage_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    stage_changed_by = models.CharField(max_length=150, blank=True, db_default="", editable=False)

    class Meta:
        db_table = "model_versions"
        ordering = ("name", "-created_at")
        permissions = (
            ("promote_modelversion", "Can change the stage of a model version (promote, roll back, archive)"),
        )
        constraints = (
            models.UniqueConstraint(fields=["name", "version"], name="model_versions_name_version_uniq"),
            # Unversioned requests resolve to the production version, so there
            # must never be two; the partial index makes the database refuse it
            # even under concurrent promotions.
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(stage=STAGE_PRODUCTION),
                name="model_versions_one_production_per_name",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(stage=STAGE_CANARY),
                name="model_versions_one_canary_per_name",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(stage=STAGE_SHADOW),
                name="model_versions_one_shadow_per_name",
            ),
            models.CheckConstraint(
                condition=models.Q(traffic_percent__lte=100), name="model_versions_traffic_percent_range"
            ),
            models.CheckConstraint(
                condition=models.Q(stage__in=Stage.values), name="model_versions_stage_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(n_features__gte=1, n_outputs__gte=1),
                name="model_versions_shape_positive",
            ),
        )

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.stage})"
