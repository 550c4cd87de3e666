"""Audit trail of changes made to models, keys and review decisions."""

from __future__ import annotations

from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The ``audit`` app: one row per change, whoever made it and wherever."""

    name = "audit"
    verbose_name = "Audit trail"
