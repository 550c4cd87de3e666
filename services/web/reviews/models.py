"""Review policies and the review queue (tables ``review_policies``, ``review_items``).

The worker reads the policy of a model name and, when it writes the audit row
of a sync prediction, queues each row whose score falls in the uncertainty
band or that a rule flags (see ``inference_common.schema``). Reviewers accept
the model's answer or override it with a reason; the decided label is feedback
the training job can add to its data.

The score of a row is its output for single-output models (a probability or
a value) and its highest class probability for multi-class models.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from inference_common.schema import REVIEW_ACCEPTED, REVIEW_OVERRIDDEN, REVIEW_PENDING


class ReviewPolicy(models.Model):
    """When predictions of one model name go to human review."""

    model_name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True, db_default=True)
    band_low = models.FloatField(null=True, blank=True, help_text="Lowest score that is queued (inclusive).")
    band_high = models.FloatField(
        null=True, blank=True, help_text="Highest score that is queued (inclusive)."
    )
    rules = models.JSONField(
        default=list,
        blank=True,
        help_text='Rules that flag a row, e.g. [{"field": "f0", "op": ">", "value": 3}]; '
        'field is a feature name or "score".',
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, db_default="")

    class Meta:
        db_table = "review_policies"
        verbose_name_plural = "review policies"
        constraints = (
            models.CheckConstraint(
                condition=models.Q(band_low__isnull=True)
                | models.Q(band_high__isnull=True)
                | models.Q(band_low__lte=models.F("band_high")),
                name="review_policies_band_ordered",
            ),
        )

    def __str__(self) -> str:
        return f"review policy for {self.model_name}"


class ReviewStatus(models.TextChoices):
    """Pending items are the backlog; the other two are decisions."""

    PENDING = REVIEW_PENDING, "Pending"
    ACCEPTED = REVIEW_ACCEPTED, "Accepted"
    OVERRIDDEN = REVIEW_OVERRIDDEN, "Overridden"


class ReviewItem(models.Model):
    """One row of one prediction, queued for a person to check."""

    prediction = models.ForeignKey(
        "predictions.PredictionRecord",
        to_field="request_id",
        db_column="request_id",
        on_delete=models.CASCADE,
        related_name="review_items",
        db_index=False,
    )
    row_index = models.IntegerField(help_text="Row of the request this item is about.")
    model_version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="review_items"
    )
    features = models.JSONField(help_text="The row's inputs, kept so the decision can train a model.")
    outputs = models.JSONField(help_text="The model's outputs for the row.")
    score = models.FloatField()
    reason = models.TextField(help_text="Why the row was queued.")
    status = models.CharField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.PENDING, db_default=REVIEW_PENDING
    )
    label = models.FloatField(
        null=True,
        blank=True,
        help_text="The decided label: the model's answer if accepted, else the override.",
    )
    decision_reason = models.TextField(blank=True, db_default="")
    decided_by = models.CharField(max_length=150, blank=True, db_default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "review_items"
        ordering = ("created_at", "id")
        permissions = (("decide_reviewitem", "Can accept or override a queued prediction"),)
        indexes = (models.Index(fields=["status", "created_at"], name="review_items_status_idx"),)
        constraints = (
            models.UniqueConstraint(fields=["prediction", "row_index"], name="review_items_request_row_uniq"),
            models.CheckConstraint(
                condition=models.Q(status__in=ReviewStatus.values), name="review_items_status_valid"
            ),
        )

    def __str__(self) -> str:
        return f"review of {self.prediction_id} row {self.row_index} ({self.status})"
