"""API key format, hashing and verification.

A key looks like ``ipk_<prefix>_<secret>``. Only the prefix (for lookup and
display) and a SHA-256 digest of the whole key are stored. Keys carry 256
bits of randomness, so a fast hash is sufficient; a slow password hash would
cost every request a few milliseconds for no security gain.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_MARKER = "ipk"
PREFIX_LENGTH = 8
SCOPES = ("predict", "jobs")


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: ``raw`` is shown to the user once, never stored."""

    raw: str
    prefix: str
    digest: str


def hash_key(raw: str) -> str:
    """Hex SHA-256 of the raw key, as stored in the database."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def generate_key() -> NewKey:
    """Create a new random key with its lookup prefix and stored digest."""
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    raw = f"{KEY_MARKER}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(raw=raw, prefix=prefix, digest=hash_key(raw))


def parse_prefix(raw: str) -> str | None:
    """Return the lookup prefix of a well-formed key, or None."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_MARKER or len(parts[1]) != PREFIX_LENGTH or not parts[2]:
        return None
    return parts[1]


def verify_key(raw: str, digest: str) -> bool:
    """Compare a presented key with a stored digest in constant time."""
    return hmac.compare_digest(hash_key(raw), digest)


def parse_scopes(text: str) -> list[str]:
    """Parse ``predict,jobs`` into a validated list; raise ValueError on unknown scopes."""
    scopes = sorted({part.strip() for part in text.split(",") if part.strip()})
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; allowed: {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError("at least one scope is required")
    return scopes
