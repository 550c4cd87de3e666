"""API key authentication: ``Authorization: Bearer <key>``.

Keys are looked up by their public prefix and compared by SHA-256 digest in
constant time. The raw key is never logged, stored or put on a span.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update

from inference_common.keys import hash_key, parse_prefix, verify_key
from inference_common.schema import api_keys

from .cache import TTLCache
from .errors import ApiError

logger = logging.getLogger(__name__)

#: How often (seconds) one api process refreshes a key's last-used time.
LAST_USED_EVERY_S = 60.0


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    key_id: int
    name: str
    scopes: frozenset[str]
    rate_limit_per_minute: int


@dataclass(frozen=True)
class _StoredKey:
    principal: Principal
    digest: str
    revoked: bool


class KeyStore:
    """Resolves bearer tokens to principals, with a short cache."""

    def __init__(self, engine: Engine, ttl: float) -> None:
        self._engine = engine
        self._cache: TTLCache[_StoredKey | None] = TTLCache(ttl, self._load)
        self._last_used: dict[int, float] = {}

    def _load(self, prefix: Hashable) -> _StoredKey | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(
                    api_keys.c.id,
                    api_keys.c.name,
                    api_keys.c.key_hash,
                    api_keys.c.scopes,
                    api_keys.c.revoked,
                    api_keys.c.rate_limit_per_minute,
                ).where(api_keys.c.prefix == prefix)
            ).first()
        if row is None:
            return None
        principal = Principal(row.id, row.name, frozenset(row.scopes or ()), int(row.rate_limit_per_minute))
        return _StoredKey(principal, row.key_hash, bool(row.revoked))

    def authenticate(self, authorization: str | None) -> Principal:
        """Return the principal for an Authorization header or raise a 401 ApiError."""
        if not authorization:
            raise ApiError(401, "missing_api_key", "missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "invalid_api_key", "the Authorization header must be 'Bearer <key>'")
        prefix = parse_prefix(token)
        stored = self._cache.get(prefix) if prefix else None
        if stored is None or not verify_key(token, stored.digest):
            # Hash anyway so an unknown prefix takes as long as a wrong secret.
            hash_key(token)
            raise ApiError(401, "invalid_api_key", "invalid API key")
        if stored.revoked:
            raise ApiError(401, "revoked_api_key", "this API key has been revoked")
        self._touch(stored.principal.key_id)
        return stored.principal

    def _touch(self, key_id: int) -> None:
        # Record last use at most once a minute per process: an UPDATE per
        # request would turn every prediction into a database write.
        now = time.monotonic()
        if now - self._last_used.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
            return
        self._last_used[key_id] = now
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=datetime.now(UTC))
                )
        except Exception:  # bookkeeping must never fail a request
            logger.warning("could not record last use of key %s", key_id, exc_info=True)


def require_scope(principal: Principal, scope: str) -> None:
    """Raise 403 unless the key carries ``scope``."""
    if scope not in principal.scopes:
        raise ApiError(403, "insufficient_scope", f"this API key lacks the '{scope}' scope")
