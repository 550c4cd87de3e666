"""Writing audit events; called inside the transaction of the change it records."""

from __future__ import annotations

from typing import Any

from django.db import models

from audit.models import AuditEvent, Source


def record(
    action: str,
    obj: models.Model,
    *,
    actor: str = "",
    source: str = Source.SYSTEM,
    **detail: Any,
) -> AuditEvent:
    """Store that ``actor`` did ``action`` to ``obj``; ``detail`` must be JSON-serialisable."""
    return AuditEvent.objects.create(
        actor=actor,
        source=source,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:300],
        detail=detail,
    )
