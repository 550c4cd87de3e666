"""App configuration of the batch jobs."""

from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """The ``jobs`` app (tables ``jobs`` and ``job_chunks``)."""

    name = "jobs"
    verbose_name = "Batch jobs"
