"""Creating, changing and revoking API keys, each change audited in its own transaction.

The management commands, the admin and the web pages all call these
functions, so every path leaves the same audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from apikeys.models import ApiKey
from audit.models import Source
from audit.services import record
from inference_common.keys import SCOPES, generate_key

# Prefixes are 32 random bits: a collision is rare but possible, so retry.
_PREFIX_ATTEMPTS = 5


class ApiKeyError(ValueError):
    """A key request that cannot be accepted (bad scopes, negative limit, bad name)."""


@dataclass(frozen=True)
class IssuedKey:
    """A stored key and its raw value, which exists only in memory from here on."""

    api_key: ApiKey
    raw: str


def _validate(name: str, scopes: list[str], rate_limit_per_minute: int) -> tuple[str, list[str]]:
    """Normalised (name, scopes); ApiKeyError for a value the api could not honour."""
    name = name.strip()
    max_length = ApiKey._meta.get_field("name").max_length
    if not name or len(name) > max_length:
        raise ApiKeyError(f"the key name must be 1-{max_length} characters")
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise ApiKeyError(f"choose at least one scope out of {', '.join(SCOPES)}")
    if rate_limit_per_minute < 0:
        raise ApiKeyError("the rate limit must be 0 (unlimited) or a positive number per minute")
    return name, sorted(set(scopes))


def issue_key(
    *,
    name: str,
    scopes: list[str],
    rate_limit_per_minute: int,
    created_by: str = "",
    actor: str | None = None,
    source: str = Source.SYSTEM,
) -> IssuedKey:
    """Generate a key, store its prefix and digest, and return the raw key once.

    ``actor`` defaults to ``created_by``; the creation is audited (never the key).
    """
    actor = created_by if actor is None else actor
    name, scopes = _validate(name, scopes, rate_limit_per_minute)
    for attempt in range(1, _PREFIX_ATTEMPTS + 1):
        new = generate_key()
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    name=name,
                    prefix=new.prefix,
                    key_hash=new.digest,
                    scopes=scopes,
                    rate_limit_per_minute=rate_limit_per_minute,
                    created_by=created_by,
                )
                record(
                    "key.create",
                    api_key,
                    actor=actor,
                    source=source,
                    prefix=api_key.prefix,
                    scopes=scopes,
                    rate_limit_per_minute=rate_limit_per_minute,
                )
        except IntegrityError:
            if attempt == _PREFIX_ATTEMPTS:
                raise
            continue
        return IssuedKey(api_key=api_key, raw=new.raw)
    raise AssertionError("unreachable")


def update_key(
    api_key: ApiKey,
    *,
    name: str | None = None,
    scopes: list[str] | None = None,
    rate_limit_per_minute: int | None = None,
    actor: str = "",
    source: str = Source.SYSTEM,
) -> bool:
    """Change a key's name, scopes or rate limit; returns False (and audits nothing) if nothing changed."""
    new_name, new_scopes = _validate(
        api_key.name if name is None else name,
        list(api_key.scopes) if scopes is None else scopes,
        api_key.rate_limit_per_minute if rate_limit_per_minute is None else rate_limit_per_minute,
    )
    new_limit = api_key.rate_limit_per_minute if rate_limit_per_minute is None else rate_limit_per_minute
    before = {
        "name": api_key.name,
        "scopes": list(api_key.scopes),
        "rate_limit_per_minute": api_key.rate_limit_per_minute,
    }
    after = {"name": new_name, "scopes": new_scopes, "rate_limit_per_minute": new_limit}
    changed = {
        field: {"from": before[field], "to": after[field]} for field in after if before[field] != after[field]
    }
    if not changed:
        return False
    with transaction.atomic():
        api_key.name, api_key.scopes, api_key.rate_limit_per_minute = new_name, new_scopes, new_limit
        api_key.save(update_fields=["name", "scopes", "rate_limit_per_minute"])
        record("key.update", api_key, actor=actor, source=source, prefix=api_key.prefix, changes=changed)
    return True


def revoke_key(api_key: ApiKey, *, actor: str = "", source: str = Source.SYSTEM) -> bool:
    """Revoke ``api_key`` now; False if it was already revoked (first time kept, nothing audited)."""
    with transaction.atomic():
        # Lock the row so two concurrent revocations audit only once.
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked:
            api_key.revoked, api_key.revoked_at = locked.revoked, locked.revoked_at
            return False
        locked.revoked = True
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked", "revoked_at"])
        record("key.revoke", locked, actor=actor, source=source, prefix=locked.prefix)
    api_key.revoked, api_key.revoked_at = locked.revoked, locked.revoked_at
    return True
