"""Audit events (table ``audit_events``): who changed what, when, and from where.

Every change to a model version or an API key goes through a service function
(``registry.services``, ``apikeys.services``) that writes one of these rows in
the same transaction as the change, so the web UI, the admin and the
management commands leave the same trail.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class Source(models.TextChoices):
    """Where a change was made."""

    WEB = "web", "Web UI"
    ADMIN = "admin", "Django admin"
    CLI = "cli", "Management command"
    SYSTEM = "system", "System (jobs, workers)"


class AuditEvent(models.Model):
    """One change: an actor, an action on an object, and what changed."""

    actor = models.CharField(max_length=150, blank=True, help_text="Username, or empty for the system.")
    source = models.CharField(max_length=8, choices=Source.choices)
    action = models.CharField(max_length=64, help_text="Dotted verb, e.g. model.promote or key.revoke.")
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "audit_events"
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["created_at"], name="audit_created_idx"),
        )

    def __str__(self) -> str:
        return f"{self.actor or 'system'} {self.action} {self.object_repr}"
