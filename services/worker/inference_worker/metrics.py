"""Prometheus metrics of the worker, aggregated across the Celery prefork pool.

Pool processes write their samples to files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client multiprocess mode); the main process serves the sum of
all of them on ``WORKER_METRICS_PORT``. prometheus_client decides at import
time whether it runs in multiprocess mode, so this module sets the directory
(a private temporary one when unset) *before* importing it. Importing this
module first, in the main process before the pool forks, is therefore what
makes the children's samples visible.

Labels are bounded on purpose: model name, version and device (plus task,
outcome and queue), never request ids, keys or pids.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="worker-metrics-")

# Imported only now: the directory must be set first (see above).
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

logger = logging.getLogger(__name__)

#: Outcomes of ``inference_worker_tasks_total``.
OK, ERROR, RETRY, REJECTED = "ok", "error", "retry", "rejected"

#: Reasons of ``inference_worker_dead_lettered_total`` (a closed set: the label stays bounded).
#: ``undecodable``: the body is not a Celery message we can read (not JSON, no task header);
#: ``malformed``: it decodes but fails the message contract; ``unknown_model``: its model
#: version id is not registered; ``load_failed``: the version's artifact cannot be loaded
#: (after the job retries); ``bad_shape``: rows that do not fit the model; ``timeout``: the
#: batch was killed by the hard time limit; ``unknown_task``: a task this worker does not have;
#: ``store_failed``: a job chunk's result could not be written (database down past the retries).
UNDECODABLE, MALFORMED, UNKNOWN_MODEL, LOAD_FAILED, BAD_SHAPE, TIMEOUT, UNKNOWN_TASK, STORE_FAILED = (
    "undecodable",
    "malformed",
    "unknown_model",
    "load_failed",
    "bad_shape",
    "timeout",
    "unknown_task",
    "store_failed",
)
DEAD_LETTER_REASONS = frozenset(
    {UNDECODABLE, MALFORMED, UNKNOWN_MODEL, LOAD_FAILED, BAD_SHAPE, TIMEOUT, UNKNOWN_TASK, STORE_FAILED}
)

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

TASKS = Counter(
    "inference_worker_tasks_total",
    "Requests (sync predict) and job chunks the worker finished, by outcome.",
    ["task", "model", "version", "device", "outcome"],
)
QUEUE_WAIT = Histogram(
    "inference_worker_queue_wait_seconds",
    "Time from publishing by the api (enqueued_at) to the start of the batch that serves it.",
    ["queue", "model", "version"],
    buckets=_SECONDS,
)
BATCH_SIZE = Histogram(
    "inference_worker_batch_size",
    "Requests per micro-batch.",
    ["queue"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
PREDICT_DURATION = Histogram(
    "inference_worker_predict_duration_seconds",
    "Duration of one predict call (a micro-batch of one model version, or one job chunk).",
    ["model", "version", "device"],
    buckets=(0.0001, 0.00025, 0.0005, *_SECONDS),
)
MODEL_LOAD_DURATION = Histogram(
    "inference_worker_model_load_duration_seconds",
    "Time to load a model version into a worker process (registry lookup, digest check, parse).",
    ["model", "version", "device"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MODEL_LOAD_FAILURES = Counter(
    "inference_worker_model_load_failures_total",
    "Model versions a worker process could not load (missing, corrupt or not a booster).",
    ["model", "version"],
)
DEAD_LETTERED = Counter(
    "inference_worker_dead_lettered_total",
    "Messages the worker rejected into the dead-letter queue (poison or out of retries), by reason.",
    ["task", "reason"],
)
# Drift gauges: written by the drift module; the highest value of any pool
# process is the one to alert on.
FEATURE_DRIFT_PSI = Gauge(
    "inference_worker_feature_drift_psi",
    "Population stability index of each input feature (and of the output, feature='__output__') "
    "against the version's baseline.",
    ["model", "version", "feature"],
    multiprocess_mode="max",
)
DRIFT_WINDOW_ROWS = Gauge(
    "inference_worker_drift_window_rows",
    "Rows in the current drift comparison window.",
    ["model", "version"],
    multiprocess_mode="max",
)


def count_task(task: str, model: str, version: str, device: str, outcome: str, amount: int = 1) -> None:
    """Count ``amount`` finished requests or chunks of ``task``."""
    if amount > 0:
        TASKS.labels(task, model, version, device, outcome).inc(amount)


def count_dead_letter(task: str, reason: str, amount: int = 1) -> None:
    """Count ``amount`` messages of ``task`` rejected to the dead-letter queue for ``reason``.

    ``task`` is the Celery task name, or ``"unknown"`` when the message named none
    we know: arbitrary task names from a hand-made message must not become labels.
    """
    if reason not in DEAD_LETTER_REASONS:
        raise ValueError(f"unknown dead-letter reason {reason!r}")
    if amount > 0:
        DEAD_LETTERED.labels(task, reason).inc(amount)


def multiproc_dir() -> Path:
    """The directory the pool processes write their samples to."""
    return Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def wipe_stale_files() -> int:
    """Delete sample files left by an earlier run (a restarted container keeps its volume).

    Call in the main process before the pool forks; returns how many were removed.
    """
    removed = 0
    for path in multiproc_dir().glob("*.db"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def aggregated_registry() -> CollectorRegistry:
    """A registry that sums the samples of every process that wrote to the directory."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(multiproc_dir()))
    return registry


def serve(port: int) -> object | None:
    """Serve the aggregated metrics on ``port`` (0: do not serve); return the server."""
    if port == 0:
        logger.info("worker metrics server disabled (WORKER_METRICS_PORT=0)")
        return None
    try:
        server, _thread = start_http_server(port, registry=aggregated_registry())
    except OSError as exc:
        # A busy port must not stop a worker from serving predictions; the
        # scrape target then shows as down, which the WorkerDown alert reports.
        logger.error("worker metrics server not started on port %d: %s", port, exc)
        return None
    logger.info("worker metrics on :%d/metrics (from %s)", port, multiproc_dir())
    return server


def mark_process_dead(pid: int) -> None:
    """Drop a finished pool process's live gauges from the aggregate."""
    multiprocess.mark_process_dead(pid, path=str(multiproc_dir()))
