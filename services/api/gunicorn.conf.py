"""gunicorn settings for the api: gthread workers, tracing started after fork, JSON logs."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from inference_common.gunicorn_logs import logconfig_dict as _logconfig_dict
from inference_common.logs import log_level
from inference_common.settings import env_bool, env_int

bind = f"0.0.0.0:{env_int('API_PORT', 8080, minimum=1, maximum=65535)}"
# One process per pod (scale with replicas): the api is Python under one GIL, so a second process
# on a pod's one CPU only competes for it. On the benchmark's 2-core machine one process served
# about 20-30% more single-row requests than two, at about 30% less api CPU each (bigger coalesced
# messages, fewer runnable threads; `python -m benchmarks.sync_probe`, PROBE_API_WORKERS=1 and 2).
workers = env_int("API_WORKERS", 1, minimum=1)
# Each sync request blocks a thread while it waits for its reply, so the
# thread count (not CPU) bounds how many requests one process has in flight.
worker_class = "gthread"
threads = env_int("API_THREADS", 32, minimum=1)
# The app is built in each worker after fork: never preload it.
preload_app = False
timeout = env_int("API_WORKER_TIMEOUT", 60, minimum=1)
graceful_timeout = env_int("API_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = 5
wsgi_app = "inference_api:create_app()"

# LOGGING
# gunicorn's own lines, the access log and the app's loggers all go to stdout
# as JSON (inference_common.logs); the access line carries the request's trace id.
logger_class = "inference_common.gunicorn_logs.AccessLogger"
logconfig_dict = _logconfig_dict("api")
loglevel = log_level().lower()
# One line per request (probes and scrapes only at DEBUG); API_ACCESS_LOG=false turns it off.
accesslog = "-" if env_bool("API_ACCESS_LOG", True) else None

# Metrics from all workers are aggregated through files in this directory.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="api-metrics-")


def on_starting(server: Any) -> None:
    """Log Python warnings (as JSON lines) instead of printing them; workers inherit it."""
    logging.captureWarnings(True)


def post_fork(server: Any, worker: Any) -> None:
    """Start the OpenTelemetry SDK in the worker, not in the gunicorn master."""
    from inference_common.telemetry import configure_tracing

    configure_tracing("api")


def post_worker_init(worker: Any) -> None:
    """The app is built: keep its start-up objects out of full GC passes (inference_common.gc_tuning)."""
    from inference_common.gc_tuning import freeze_startup_objects

    freeze_startup_objects()


def worker_exit(server: Any, worker: Any) -> None:
    """Flush spans the worker still holds."""
    from inference_common.telemetry import shutdown_tracing

    shutdown_tracing()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live metrics (gauges) from the aggregate."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
