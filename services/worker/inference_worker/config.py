"""Worker settings, read from the environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from inference_common import settings as env
from inference_common.contract import Queues


def heartbeat_file(source: Mapping[str, str] | None = None) -> Path:
    """File the worker touches every few seconds while its event loop runs (liveness)."""
    return Path(env.env_str("WORKER_HEARTBEAT_FILE", "/tmp/inference-worker.heartbeat", env=source))


def ready_file(source: Mapping[str, str] | None = None) -> Path:
    """File that exists while the worker consumes (readiness)."""
    return Path(env.env_str("WORKER_READY_FILE", "/tmp/inference-worker.ready", env=source))


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the worker reads from its environment."""

    broker_url: str
    database_url: str
    model_store: Path
    queues: Queues
    device: str
    batch_max_size: int
    batch_max_wait_s: float
    model_cache_size: int
    soft_time_limit_s: int
    time_limit_s: int
    max_retries: int
    store_outputs_max_rows: int
    policy_cache_ttl_s: float
    review_max_rows_per_request: int
    concurrency: int | None
    heartbeat_file: Path
    ready_file: Path
    #: Port of the Prometheus /metrics server in the main process; 0 disables it.
    metrics_port: int = 9808

    @classmethod
    def from_env(cls, source: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read and validate the settings; raise ConfigError on bad values."""
        soft = env.env_int("WORKER_SOFT_TIME_LIMIT", 60, minimum=1, env=source)
        return cls(
            broker_url=env.broker_url(source),
            database_url=env.database_url(source),
            model_store=env.model_store(source),
            queues=Queues(env.env_str("BROKER_QUEUE_PREFIX", "inference", env=source)),
            device=env.env_choice("WORKER_DEVICE", "auto", ("auto", "cpu", "cuda"), env=source),
            batch_max_size=env.env_int("WORKER_BATCH_MAX_SIZE", 64, minimum=1, env=source),
            # 0: an idle pool process takes a request at once (tasks.MicroBatch).
            batch_max_wait_s=env.env_float("WORKER_BATCH_MAX_WAIT_MS", 0.0, minimum=0.0, env=source) / 1000,
            model_cache_size=env.env_int("WORKER_MODEL_CACHE_SIZE", 8, minimum=1, env=source),
            soft_time_limit_s=soft,
            time_limit_s=env.env_int("WORKER_TIME_LIMIT", soft + 30, minimum=soft + 1, env=source),
            max_retries=env.env_int("WORKER_MAX_RETRIES", 3, minimum=0, env=source),
            store_outputs_max_rows=env.env_int("WORKER_STORE_OUTPUTS_MAX_ROWS", 100, minimum=0, env=source),
            # A review policy edited in the web tier applies within this many seconds.
            policy_cache_ttl_s=env.env_float("WORKER_POLICY_CACHE_TTL_S", 30.0, minimum=0.0, env=source),
            # 0 turns review queueing off in this worker.
            review_max_rows_per_request=env.env_int(
                "WORKER_REVIEW_MAX_ROWS_PER_REQUEST", 100, minimum=0, env=source
            ),
            # 0 (the default) lets Celery use one pool process per CPU.
            concurrency=env.env_int("WORKER_CONCURRENCY", 0, minimum=0, env=source) or None,
            heartbeat_file=heartbeat_file(source),
            ready_file=ready_file(source),
            metrics_port=env.env_int("WORKER_METRICS_PORT", 9808, minimum=0, maximum=65535, env=source),
        )
