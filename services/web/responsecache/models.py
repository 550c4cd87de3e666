"""Response cache policies (table ``response_cache_policies``), read by the api.

With a policy enabled for a model name, and ``CACHE_REDIS_URL`` set on the
api, the api answers a sync request whose model version and input rows it
has answered before from Redis, without publishing it (docs/response-cache.md).
``generation`` is part of every cache key: ``responsecache.services.invalidate``
bumps it whenever the versions serving the name change.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

#: Bounds of a policy; the api's Lua script trims one name's entries at a time.
MAX_TTL_S = 30 * 24 * 3600
MAX_ENTRIES = 1_000_000


class ResponseCachePolicy(models.Model):
    """Whether, how long and how much the api caches the answers of one model name."""

    model_name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True, db_default=True)
    ttl_s = models.PositiveIntegerField(
        "TTL (seconds)",
        default=300,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TTL_S)],
        help_text="How long an answer is kept after it was computed.",
    )
    max_entries = models.PositiveIntegerField(
        default=10_000,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_ENTRIES)],
        help_text="Most answers kept for this model name (all versions); the ones expiring first make room.",
    )
    generation = models.BigIntegerField(
        default=0,
        db_default=0,
        editable=False,
        help_text="Part of every cache key; raised by promotions, roll backs, canary, shadow and archive "
        "changes and by clearing, so that earlier answers are never served again.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, db_default="")

    class Meta:
        db_table = "response_cache_policies"
        verbose_name_plural = "response cache policies"
        constraints = (
            models.CheckConstraint(
                condition=models.Q(ttl_s__gte=1, ttl_s__lte=MAX_TTL_S), name="response_cache_ttl_range"
            ),
            models.CheckConstraint(
                condition=models.Q(max_entries__gte=1, max_entries__lte=MAX_ENTRIES),
                name="response_cache_max_entries_range",
            ),
        )

    def __str__(self) -> str:
        return f"response cache policy for {self.model_name}"
