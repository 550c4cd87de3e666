"""Prediction audit rows (table ``prediction_records``).

The worker inserts one row per request (or job chunk) with
``INSERT ... ON CONFLICT DO NOTHING`` keyed on ``request_id``, so a
redelivered message never produces a second row. Django only reads them.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from inference_common.schema import ROUTES


class PredictionRecord(models.Model):
    """What was asked, by whom, of which model version, and how it was answered."""

    request_id = models.CharField(max_length=80, unique=True)
    api_key = models.ForeignKey(
        "apikeys.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="prediction_records",
    )
    # The (model_version, created_at) index below serves lookups by version too.
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.PROTECT,
        related_name="prediction_records",
        db_index=False,
    )
    job = models.ForeignKey(
        "jobs.Job",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="prediction_records",
    )
    protocol = models.CharField(max_length=8, help_text="v1 (KServe v1) or v2 (Open Inference Protocol).")
    n_rows = models.IntegerField()
    inputs_digest = models.CharField(max_length=64, help_text="SHA-256 of the float32 inputs.")
    outputs = models.JSONField(null=True, blank=True, help_text="Stored for small requests only.")
    outputs_digest = models.CharField(max_length=64, blank=True, db_default="")
    latency_ms = models.FloatField(help_text="From publish to reply, in milliseconds.")
    predict_ms = models.FloatField(help_text="Time of the predict call for the whole batch.")
    batch_size = models.IntegerField(help_text="Rows in the micro-batch this request was part of.")
    device = models.CharField(max_length=8)
    trace_id = models.CharField(max_length=32, blank=True, db_default="")
    status = models.CharField(max_length=16)
    error = models.TextField(blank=True, db_default="")
    route = models.CharField(
        max_length=16,
        choices=[(route, route) for route in ROUTES],
        blank=True,
        db_default="",
        help_text="How the version was chosen: pinned by the request, production, canary, shadow or job.",
    )
    shadow_of = models.CharField(
        max_length=80,
        blank=True,
        db_default="",
        help_text="For a shadow copy: the request id the client got.",
    )
    created_at = models.DateTimeField(db_default=Now())
    cache_hit = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Answered by the api from its response cache: no worker predicted it.",
    )

    class Meta:
        db_table = "prediction_records"
        ordering = ("-created_at",)
        permissions = (("export_predictionrecord", "Can export prediction records as CSV"),)
        indexes = (
            models.Index(fields=["created_at"], name="predrec_created_idx"),
            models.Index(fields=["trace_id"], name="predrec_trace_idx"),
            models.Index(fields=["model_version", "created_at"], name="predrec_model_created_idx"),
            models.Index(
                fields=["shadow_of"], name="predrec_shadow_of_idx", condition=~models.Q(shadow_of="")
            ),
        )

    def __str__(self) -> str:
        return self.request_id
