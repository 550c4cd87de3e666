"""A bound on the sync requests one api process holds at once, overall and per key.

Each sync request holds a gunicorn thread while it waits for its reply (up to
``API_SYNC_TIMEOUT_S``). Without a bound, a slow worker pool lets requests pile
up until every thread waits, and then probes, ``/metrics`` and every other
client queue behind them. With it, a request over the bound is refused at once
(503 ``overloaded``, or 429 ``too_many_concurrent_requests`` when its own key
holds too many) with ``Retry-After``, and the threads kept free answer the rest.

The counters are per process (gunicorn forks several): the bounds are per
process too, which the docs state as such.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from flask import Flask, Response, g, request
from prometheus_client import Counter, Gauge

from .errors import ApiError

#: Endpoints that wait for a worker's answer: the only ones the bound applies to.
#: Jobs (202 at once), metadata, probes and /metrics are never refused by it.
SYNC_ENDPOINTS = frozenset(
    {
        "inference.v1_predict",
        "inference.v1_version_predict",
        "inference.v2_infer",
        "inference.v2_version_infer",
    }
)

#: Seconds a refused client should wait: slots free as soon as any reply arrives.
RETRY_AFTER_S = 1

REASON_GLOBAL = "global"
REASON_KEY = "key"

INFLIGHT = Gauge(
    "inference_api_inflight_requests",
    "Sync requests waiting for a worker's answer, summed over live api processes.",
    multiprocess_mode="livesum",
)
REFUSED = Counter(
    "inference_api_inflight_refusals_total",
    "Sync requests refused because the process (global) or the key already had the most allowed in flight.",
    ["reason"],
)


@dataclass
class InflightLimiter:
    """Counts in-flight requests per process and per key; never blocks.

    ``try_acquire`` either takes a slot (returns None) or says which bound
    refused it; every successful ``try_acquire`` must be paired with one
    ``release`` of the same key.
    """

    max_inflight: int
    max_per_key: int

    def __post_init__(self) -> None:
        if self.max_inflight < 1 or self.max_per_key < 1:
            raise ValueError("in-flight bounds must be at least 1")
        self._lock = threading.Lock()
        self._total = 0
        self._per_key: dict[str, int] = {}

    @property
    def inflight(self) -> int:
        """Requests holding a slot now."""
        return self._total

    def held_by(self, key: str) -> int:
        """Slots one key holds now."""
        return self._per_key.get(key, 0)

    def try_acquire(self, key: str) -> str | None:
        """Take a slot for ``key``; return None, or the reason it was refused."""
        with self._lock:
            held = self._per_key.get(key, 0)
            # The key's own cap is checked first: a client over its share is told
            # so (429) even when the process also happens to be full.
            if held >= self.max_per_key:
                return REASON_KEY
            if self._total >= self.max_inflight:
                return REASON_GLOBAL
            self._per_key[key] = held + 1
            self._total += 1
            return None

    def release(self, key: str) -> None:
        """Give back a slot taken by ``try_acquire``."""
        with self._lock:
            held = self._per_key.get(key, 0)
            if held <= 0:
                raise RuntimeError(f"release without acquire for {key}")
            if held == 1:
                # Drop idle keys so the map stays as small as the set of active clients.
                del self._per_key[key]
            else:
                self._per_key[key] = held - 1
            self._total -= 1


def init_app(app: Flask, limiter: InflightLimiter) -> None:
    """Refuse sync requests over the bounds; register after authentication and the rate limiter.

    Registered last among the ``before_request`` hooks, so a request that is
    unauthenticated or over its rate limit is refused by those first and never
    takes a slot.
    """
    app.extensions["inflight"] = limiter

    @app.before_request
    def _take_slot() -> None:
        if request.endpoint not in SYNC_ENDPOINTS:
            return
        principal = g.get("principal")
        key = f"key:{principal.key_id}" if principal is not None else "anonymous"
        refused = limiter.try_acquire(key)
        if refused == REASON_KEY:
            REFUSED.labels(REASON_KEY).inc()
            g.inflight_refused = True
            raise ApiError(
                429,
                "too_many_concurrent_requests",
                f"this key already has {limiter.max_per_key} requests in flight on this api process; "
                "retry when one has been answered",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        if refused == REASON_GLOBAL:
            REFUSED.labels(REASON_GLOBAL).inc()
            g.inflight_refused = True
            raise ApiError(
                503,
                "overloaded",
                f"the api already has {limiter.max_inflight} requests in flight; retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        g.inflight_key = key
        INFLIGHT.inc()

    # teardown_request runs whatever happened (errors, timeouts): a slot is
    # never leaked, or the process would refuse everything once they run out.
    @app.teardown_request
    def _give_back_slot(_exc: BaseException | None) -> None:
        key = g.pop("inflight_key", None)
        if key is not None:
            limiter.release(key)
            INFLIGHT.dec()


def keep_retry_after(app: Flask) -> None:
    """Keep this module's ``Retry-After`` on its refusals; register *before* the rate limiter.

    Flask-Limiter (``headers_enabled``) rewrites ``Retry-After`` on every
    response to when the key's rate-limit window resets (up to a minute away);
    a slot frees as soon as any reply arrives. ``after_request`` hooks run in
    reverse order of registration, so this one, registered first, runs last.
    """

    @app.after_request
    def _restore(response: Response) -> Response:
        if g.pop("inflight_refused", False):
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
