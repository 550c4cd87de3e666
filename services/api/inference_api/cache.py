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
    one ttl (plus one load), which is the price of not querying the database
    per request. An expired entry is reloaded by one thread while the others
    keep answering with the old value: when all of a process's busy threads
    reloaded the same key at once, every expiry cost a burst of identical
    queries and stalled the requests behind them (about 6% of the api's CPU
    under load, and a latency spike every ttl).
    """

    def __init__(self, ttl: float, loader: Callable[[Hashable], V], max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._loader = loader
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._reloading: set[Hashable] = set()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V:
        """Cached value for ``key``, loading it when absent or expired.

        An expired value is still returned while another thread reloads it; a
        failed reload raises in the thread that tried it, and the next call tries again.
        """
        if self._ttl <= 0:
            return self._loader(key)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                if hit[0] > now or key in self._reloading:
                    return hit[1]
                self._reloading.add(key)
        try:
            value = self._loader(key)
        finally:
            if hit is not None:
                with self._lock:
                    self._reloading.discard(key)
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (now + self._ttl, value)
        return value
