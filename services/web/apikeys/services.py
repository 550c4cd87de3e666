"""Creating API keys; shared by the management command and anything else that issues keys."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from apikeys.models import ApiKey
from inference_common.keys import generate_key

# Prefixes are 32 random bits: a collision is rare but possible, so retry.
_PREFIX_ATTEMPTS = 5


@dataclass(frozen=True)
class IssuedKey:
    """A stored key and its raw value, which exists only in memory from here on."""

    api_key: ApiKey
    raw: str


def issue_key(*, name: str, scopes: list[str], rate_limit_per_minute: int, created_by: str = "") -> IssuedKey:
    """Generate a key, store its prefix and digest, and return the raw key once."""
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
        except IntegrityError:
            if attempt == _PREFIX_ATTEMPTS:
                raise
            continue
        return IssuedKey(api_key=api_key, raw=new.raw)
    raise AssertionError("unreachable")
