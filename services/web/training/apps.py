"""Training new model versions from uploaded CSV files, as Celery jobs."""

from __future__ import annotations

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """The ``training`` app: training runs and their progress."""

    name = "training"
    verbose_name = "Training"
