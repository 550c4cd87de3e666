"""A tiny thread-safe TTL cache for registry and key lookups on the hot path."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """Memoise ``loader(key)`` for ``ttl`` seconds; ``ttl=0`` disables caching.

    Revocations and stage changes made in the web tier reach the api within
    one ttl, which is the price of not querying the database per request.
    """

    def __init__(self, ttl: float, loader: Callable[[Hashable], V], max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._loader = loader
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V:
        """Cached value for ``key``, loading it when absent or expired."""
        now = time.monotonic()
        if self._ttl > 0:
            with self._lock:
                hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = self._loader(key)
        if self._ttl > 0:
            with self._lock:
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self._ttl, value)
        return value
