"""App configuration of the prediction audit log."""

from __future__ import annotations

from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    """The ``predictions`` app (table ``prediction_records``)."""

    name = "predictions"
    verbose_name = "Predictions"
