"""Operational charts: throughput, latency, errors and backlogs per model version."""

from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The ``dashboard`` app (no models of its own)."""

    name = "dashboard"
    verbose_name = "Dashboard"
