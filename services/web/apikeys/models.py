"""API keys (table ``api_keys``).

Only the lookup prefix and a SHA-256 digest of the key are stored (see
``inference_common.keys``); the raw key is shown once when it is created and
cannot be recovered. The api reads and updates these rows through SQLAlchemy,
so the columns of ``inference_common.schema.api_keys`` are a contract.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

#: Requests per minute a new key may make; 0 means unlimited.
DEFAULT_RATE_LIMIT_PER_MINUTE = 600


class ApiKey(models.Model):
    """A credential for the inference API, with its scopes and rate limit."""

    name = models.CharField(max_length=100, help_text="Who or what uses this key.")
    prefix = models.CharField(
        max_length=16,
        unique=True,
        editable=False,
        help_text="Public part of the key (ipk_<prefix>_...), used to look it up.",
    )
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text="What the key may do: predict, jobs.")
    revoked = models.BooleanField(default=False, db_default=False)
    rate_limit_per_minute = models.PositiveIntegerField(
        default=DEFAULT_RATE_LIMIT_PER_MINUTE,
        db_default=DEFAULT_RATE_LIMIT_PER_MINUTE,
        help_text="Requests per minute; 0 means unlimited.",
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Django-only columns.
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.CharField(max_length=150, blank=True, db_default="", editable=False)

    class Meta:
        db_table = "api_keys"
        ordering = ("name", "prefix")
        permissions = (("revoke_apikey", "Can revoke an API key"),)
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def revoke(self) -> bool:
        """Revoke the key now; returns False if it was already revoked (time kept)."""
        if self.revoked:
            return False
        self.revoked = True
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked", "revoked_at"])
        return True
