"""API settings, read from the environment in one place (inside ``create_app``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from inference_common import settings as env
from inference_common.contract import Queues
from inference_common.settings import ConfigError

#: URL schemes redis-py connects to.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class ApiSettings:
    """Everything the api reads from its environment."""

    broker_url: str
    database_url: str
    queues: Queues
    sync_timeout_s: float
    #: Most sync requests of one process published in one message (docs/performance.md).
    max_coalesced: int
    max_body_bytes: int
    max_sync_body_bytes: int
    max_sync_rows: int
    job_chunk_rows: int
    max_job_rows: int
    #: Longest ``GET /v1/jobs/{id}?wait=`` (0: never wait) and most such requests waiting per process.
    job_max_wait_s: float
    job_max_waiters: int
    cache_ttl_s: float
    ratelimit_storage_uri: str
    max_inflight: int
    max_inflight_per_key: int
    #: Response cache (docs/response-cache.md): empty URL = off, whatever the policies say.
    cache_redis_url: str
    cache_key_prefix: str
    cache_redis_timeout_s: float
    cache_max_entry_bytes: int
    cache_audit_buffer_rows: int
    cache_audit_outputs_max_rows: int

    @classmethod
    def from_env(cls, source: Mapping[str, str] | None = None) -> ApiSettings:
        """Read and validate the settings; raise ConfigError on bad values."""
        # Sync requests each hold a gunicorn thread while they wait: keep a few
        # threads (2, or 1 of a tiny pool) free for probes, /metrics and the
        # immediate 503s, so a full process still answers instead of queueing.
        threads = env.env_int("API_THREADS", 32, minimum=1, env=source)
        max_inflight = env.env_int("API_MAX_INFLIGHT", max(1, threads - 2), minimum=1, env=source)
        return cls(
            broker_url=env.broker_url(source),
            database_url=env.database_url(source),
            queues=Queues(env.env_str("BROKER_QUEUE_PREFIX", "inference", env=source)),
            sync_timeout_s=env.env_float("API_SYNC_TIMEOUT_S", 30.0, minimum=0.1, env=source),
            max_coalesced=env.env_int("API_MAX_COALESCED", 32, minimum=1, env=source),
            max_body_bytes=env.env_int("API_MAX_BODY_BYTES", 64 << 20, minimum=1024, env=source),
            max_sync_body_bytes=env.env_int("API_MAX_SYNC_BODY_BYTES", 4 << 20, minimum=1024, env=source),
            max_sync_rows=env.env_int("API_MAX_SYNC_ROWS", 1024, minimum=1, env=source),
            job_chunk_rows=env.env_int("API_JOB_CHUNK_ROWS", 16384, minimum=1, env=source),
            max_job_rows=env.env_int("API_MAX_JOB_ROWS", 1_000_000, minimum=1, env=source),
            job_max_wait_s=env.env_float("API_JOB_MAX_WAIT_S", 30.0, minimum=0.0, env=source),
            # A waiting request holds a gunicorn thread: a quarter of them at most by default.
            job_max_waiters=env.env_int("API_JOB_MAX_WAITERS", max(1, threads // 4), minimum=0, env=source),
            cache_ttl_s=env.env_float("API_CACHE_TTL_S", 5.0, minimum=0.0, env=source),
            ratelimit_storage_uri=env.env_secret("RATELIMIT_STORAGE_URI", "memory://", env=source),
            max_inflight=max_inflight,
            # Off (equal to the global bound) unless set: one client may legitimately
            # send many requests at once; multi-tenant installs set a share (docs/security.md).
            max_inflight_per_key=env.env_int("API_MAX_INFLIGHT_PER_KEY", max_inflight, minimum=1, env=source),
            cache_redis_url=_redis_url(env.env_secret("CACHE_REDIS_URL", "", env=source)),
            cache_key_prefix=env.env_str("CACHE_KEY_PREFIX", "inference:rc", env=source),
            # Short: a slow or unreachable Redis must cost a request little more than a miss.
            cache_redis_timeout_s=env.env_float("CACHE_REDIS_TIMEOUT_S", 0.1, minimum=0.001, env=source),
            cache_max_entry_bytes=env.env_int("CACHE_MAX_ENTRY_BYTES", 1 << 20, minimum=64, env=source),
            cache_audit_buffer_rows=env.env_int("CACHE_AUDIT_BUFFER_ROWS", 10_000, minimum=1, env=source),
            # Like WORKER_STORE_OUTPUTS_MAX_ROWS: outputs are stored in full only for small requests.
            cache_audit_outputs_max_rows=env.env_int(
                "CACHE_AUDIT_OUTPUTS_MAX_ROWS", 100, minimum=0, env=source
            ),
        )

    def with_overrides(self, overrides: Mapping[str, Any]) -> ApiSettings:
        """A copy with some fields replaced (tests pass these to ``create_app``)."""
        return replace(self, **dict(overrides))


def _redis_url(url: str) -> str:
    if url and not url.startswith(REDIS_SCHEMES):
        scheme = url.split(":", 1)[0]
        raise ConfigError(f"CACHE_REDIS_URL must start with {', '.join(REDIS_SCHEMES)}, got {scheme!r}")
    return url
