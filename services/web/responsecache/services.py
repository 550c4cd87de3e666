"""Changing response cache policies, always with an audit event, and invalidating cached answers."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from audit.services import record
from responsecache.models import ResponseCachePolicy


def save_policy(policy: ResponseCachePolicy, *, actor: str, source: str) -> ResponseCachePolicy:
    """Create or change ``policy`` and record who did it (``response_cache_policy.create|change``)."""
    action = "response_cache_policy.change" if policy.pk else "response_cache_policy.create"
    with transaction.atomic():
        policy.updated_by = actor
        policy.save()
        record(
            action,
            policy,
            actor=actor,
            source=source,
            model_name=policy.model_name,
            enabled=policy.enabled,
            ttl_s=policy.ttl_s,
            max_entries=policy.max_entries,
        )
    return policy


def invalidate(model_name: str) -> bool:
    """Make the api forget every cached answer of ``model_name``; False if it has no policy.

    Bumps the generation that is part of each cache key. Called in the
    transaction of every stage change, so the api (which reads policies and
    stages with the same ``API_CACHE_TTL_S``) misses from the moment it
    routes by the new stages.
    """
    return bool(
        ResponseCachePolicy.objects.filter(model_name=model_name).update(generation=F("generation") + 1)
    )


def clear(policy: ResponseCachePolicy, *, actor: str, source: str) -> ResponseCachePolicy:
    """Invalidate the cached answers of the policy's model name on request, with an audit event."""
    with transaction.atomic():
        invalidate(policy.model_name)
        policy.refresh_from_db()
        record(
            "response_cache.clear",
            policy,
            actor=actor,
            source=source,
            model_name=policy.model_name,
            generation=policy.generation,
        )
    return policy
