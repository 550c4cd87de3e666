"""The response cache: repeated inputs answered from Redis, without the queue.

Opt-in per model name through its cache policy (web tier; read through the
registry's cached lookups) and on only when ``CACHE_REDIS_URL`` is set.

An entry is keyed by the model name's cache generation, the model version
that answers, the input shape and the SHA-256 of the float32 rows: models
see float32, so a v1 and a v2 body with the same numbers share an entry, and
the digest is also the audit row's ``inputs_digest``. The value is a one-line
JSON header (shape, dtype, device) and the raw output bytes.

Per model name a sorted set indexes the entries (score: expiry time) so that
a Lua script can hold the name to ``max_entries``, evicting the entries that
expire first. The web tier bumps the generation whenever the versions that
serve a name change (promote, roll back, canary, shadow, archive) or an
operator clears the cache: old keys are then never read again, and the first
store under the new generation deletes them.

Redis is an optimisation, never a dependency: with short socket timeouts,
any failure is logged, counted, served as a miss, and Redis is left alone
for ``RETRY_AFTER_S`` so that an outage does not cost every request a timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson
import redis
from flask import Flask, Response, g, has_request_context
from opentelemetry import trace
from redis.backoff import NoBackoff
from redis.retry import Retry

from inference_common.contract import PredictReply
from inference_common.digests import array_digest, as_float32
from inference_common.telemetry import current_trace_id

from .cache_audit import HitAuditWriter, new_hit_record
from .metrics import CACHE_ERRORS, CACHE_HITS, CACHE_MISSES, CACHE_STORE_SKIPS
from .registry import CachePolicy, ModelInfo, Registry, Route

logger = logging.getLogger(__name__)

#: Response header telling clients (and tests) whether the cache answered.
CACHE_HEADER = "X-Cache"
HIT, MISS = "hit", "miss"
#: After a Redis failure, requests skip the cache for this long (served as misses).
RETRY_AFTER_S = 2.0

# Stores an entry under the caller's generation, purging an older generation's
# entries first, then trims the index to max_entries (soonest expiry first).
# Returns 1 when stored, 0 when the caller's generation is outdated.
# KEYS: entry, index, generation. ARGV: value, ttl ms, max entries, generation.
_STORE = """
local current = tonumber(redis.call('GET', KEYS[3]) or '-1')
local mine = tonumber(ARGV[4])
if current > mine then return 0 end
local function unlink_all(keys)
  for i = 1, #keys, 1000 do
    redis.call('UNLINK', unpack(keys, i, math.min(i + 999, #keys)))
  end
end
if current < mine then
  unlink_all(redis.call('ZRANGE', KEYS[2], 0, -1))
  redis.call('DEL', KEYS[2])
end
local clock = redis.call('TIME')
-- Milliseconds with the microseconds kept: stores within one millisecond still rank by age.
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local expires = now + tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], expires, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  unlink_all(redis.call('ZRANGE', KEYS[2], 0, excess - 1))
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
-- The index and the generation live as long as the longest-lived entry.
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local until_ms = math.ceil(math.max(expires, tonumber(last[2] or expires)))
redis.call('SET', KEYS[3], mine, 'PXAT', until_ms)
redis.call('PEXPIREAT', KEYS[2], until_ms)
return 1
"""


@dataclass(frozen=True)
class Keys:
    """The Redis keys of one model name (one hash tag, so one Redis Cluster slot)."""

    prefix: str
    name: str

    @property
    def _base(self) -> str:
        return f"{self.prefix}:{{{self.name}}}"

    @property
    def index(self) -> str:
        """Sorted set of the name's entry keys, scored by expiry time (ms)."""
        return f"{self._base}:index"

    @property
    def generation(self) -> str:
        """The generation the stored entries belong to."""
        return f"{self._base}:generation"

    def entry(self, generation: int, model_version_id: int, shape: tuple[int, ...], digest: str) -> str:
        """The key of one answer."""
        dims = "x".join(str(dim) for dim in shape)
        return f"{self._base}:g{generation}:v{model_version_id}:{dims}:{digest}"


def encode_answer(outputs: list[float], shape: list[int], device: str) -> bytes:
    """A reply's outputs as stored: float32 bytes when that is lossless, else float64."""
    wide = np.asarray(outputs, dtype=np.float64)
    narrow = wide.astype(np.float32)
    packed = narrow if np.array_equal(narrow, wide) else wide
    header = {"shape": shape, "dtype": packed.dtype.str, "device": device}
    return orjson.dumps(header) + b"\n" + packed.tobytes()


def decode_answer(value: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    """(flat outputs, header) of a stored value; ValueError if it is not one."""
    head, _, body = value.partition(b"\n")
    header = orjson.loads(head)
    outputs = np.frombuffer(body, dtype=np.dtype(header["dtype"]))
    if int(np.prod(header["shape"])) != outputs.size:
        raise ValueError(f"stored outputs have {outputs.size} values, shape {header['shape']}")
    return outputs, header


@dataclass(frozen=True)
class Lookup:
    """One sync request's visit to the cache; ``policy`` None means the cache is not in play."""

    model: ModelInfo
    policy: CachePolicy | None = None
    key: str = ""
    inputs_digest: str = ""
    n_rows: int = 0
    started: float = 0.0
    #: The cached answer on a hit, else None.
    reply: PredictReply | None = None
    outputs: np.ndarray | None = None
    device: str = ""


class ResponseCache:
    """Looks answers up before publishing and stores the worker's answers after."""

    def __init__(
        self,
        registry: Registry,
        audit: HitAuditWriter,
        *,
        redis_url: str,
        key_prefix: str,
        timeout_s: float,
        max_entry_bytes: int,
    ) -> None:
        self._registry = registry
        self._audit = audit
        self._prefix = key_prefix
        self._max_entry_bytes = max_entry_bytes
        self._redis: redis.Redis | None = None
        self._store_script: Any = None
        if redis_url:
            # No retries: a failed call is a miss, not a reason to wait longer.
            self._redis = redis.Redis.from_url(
                redis_url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
            self._store_script = self._redis.register_script(_STORE)
        self._down_until = 0.0
        self._state_lock = threading.Lock()

    # -- the request path ------------------------------------------------
    def lookup(self, route: Route, matrix: np.ndarray) -> Lookup:
        """Find the answer of ``route.model`` for ``matrix``; a Lookup with ``reply`` set on a hit."""
        model = route.model
        if self._redis is None:
            return Lookup(model)
        policy = self._registry.cache_policy(model.name)
        if policy is None:
            return Lookup(model)
        started = time.perf_counter()
        rows = as_float32(matrix)
        digest = array_digest(rows)
        key = Keys(self._prefix, model.name).entry(policy.generation, model.id, rows.shape, digest)
        lookup = Lookup(model, policy, key, digest, int(rows.shape[0]), started)
        value = self._call("lookup", self._redis.get, key)
        if value is not None:
            try:
                outputs, header = decode_answer(value)
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                CACHE_ERRORS.labels("decode").inc()
                logger.warning("ignoring an unreadable response cache entry for %s: %s", model.name, exc)
            else:
                reply = PredictReply.model_construct(
                    request_id="",
                    outputs=outputs.tolist(),
                    shape=list(header["shape"]),
                    error=None,
                    error_code=None,
                    device=header.get("device"),
                    batch_size=0,
                )
                CACHE_HITS.labels(model.name).inc()
                _mark(HIT)
                return replace(lookup, reply=reply, outputs=outputs, device=header.get("device") or "")
        CACHE_MISSES.labels(model.name).inc()
        _mark(MISS)
        return lookup

    def record_hit(
        self, lookup: Lookup, request_id: str, protocol: str, route: str, api_key_id: int | None
    ) -> None:
        """Queue the audit row of a hit (marked ``cache_hit``); the request does not wait for the write."""
        if lookup.outputs is None or lookup.reply is None:
            raise ValueError("record_hit needs a Lookup that hit")
        self._audit.submit(
            new_hit_record(
                request_id=request_id,
                api_key_id=api_key_id,
                model_version_id=lookup.model.id,
                protocol=protocol,
                route=route,
                inputs_digest=lookup.inputs_digest,
                n_rows=lookup.n_rows,
                outputs=lookup.outputs.reshape(lookup.reply.shape),
                latency_ms=(time.perf_counter() - lookup.started) * 1000,
                device=lookup.device,
                trace_id=current_trace_id(),
            )
        )

    def store(self, lookup: Lookup, reply: PredictReply) -> None:
        """Keep a worker's successful answer for the lookup's policy ttl (a miss's second half)."""
        policy = lookup.policy
        if self._store_script is None or policy is None or lookup.reply is not None or reply.error:
            return
        value = encode_answer(reply.outputs, reply.shape, reply.device or "")
        if len(value) > self._max_entry_bytes:
            CACHE_STORE_SKIPS.labels("too_large").inc()
            return
        keys = Keys(self._prefix, lookup.model.name)
        stored = self._call(
            "store",
            self._store_script,
            keys=[lookup.key, keys.index, keys.generation],
            args=[value, policy.ttl_s * 1000, policy.max_entries, policy.generation],
        )
        if stored == 0:
            # This process has not seen the newest generation yet (registry ttl).
            CACHE_STORE_SKIPS.labels("outdated_generation").inc()

    # -- Redis failures ------------------------------------------------------
    def _call(self, operation: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() < self._down_until:
            CACHE_ERRORS.labels(operation).inc()
            return None
        try:
            return function(*args, **kwargs)
        except redis.RedisError as exc:
            CACHE_ERRORS.labels(operation).inc()
            with self._state_lock:
                first = time.monotonic() >= self._down_until
                self._down_until = time.monotonic() + RETRY_AFTER_S
            if first:
                logger.warning(
                    "response cache unavailable (%s: %s); serving misses for %.0fs",
                    type(exc).__name__,
                    exc,
                    RETRY_AFTER_S,
                )
            return None

    def close(self) -> None:
        """Write buffered audit rows and drop Redis connections (shutdown, tests)."""
        self._audit.close()
        if self._redis is not None:
            self._redis.close()


def _mark(result: str) -> None:
    trace.get_current_span().set_attribute("inference.cache", result)
    if has_request_context():
        g.response_cache = result


def init_app(app: Flask) -> None:
    """Add ``X-Cache: hit|miss`` to answers of cache-enabled models."""

    @app.after_request
    def _cache_header(response: Response) -> Response:
        result = g.pop("response_cache", None)
        if result is not None:
            response.headers[CACHE_HEADER] = result
        return response
