"""gunicorn settings for the web tier; tracing starts after fork, logs are JSON, metrics multi-process."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from inference_common.gunicorn_logs import logconfig_dict as _logconfig_dict
from inference_common.logs import log_level
from inference_common.settings import env_bool, env_int

bind = f"0.0.0.0:{env_int('WEB_PORT', 8000, minimum=1, maximum=65535)}"
workers = env_int("WEB_WORKERS", 2, minimum=1)
worker_class = "gthread"
threads = env_int("WEB_THREADS", 4, minimum=1)
preload_app = False
timeout = 60
wsgi_app = "config.wsgi:application"

# LOGGING
# gunicorn's lines and the access log in the one JSON format (Django's own
# loggers use the same formatter through settings.LOGGING).
logger_class = "inference_common.gunicorn_logs.AccessLogger"
logconfig_dict = _logconfig_dict("web")
loglevel = log_level().lower()
# One line per request (probes and scrapes only at DEBUG); WEB_ACCESS_LOG=false turns it off.
accesslog = "-" if env_bool("WEB_ACCESS_LOG", True) else None

# METRICS
# django-prometheus counts in every worker; /metrics (config.metrics) adds up
# the samples all workers write to this directory.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="web-metrics-")


def on_starting(server: Any) -> None:
    """Log Python warnings (as JSON lines) instead of printing them; workers inherit it."""
    logging.captureWarnings(True)


def post_fork(server: Any, worker: Any) -> None:
    """Start tracing in the worker, before Django loads, so its middleware is instrumented."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    from inference_common.gunicorn_logs import keep_span_for_access_log
    from inference_common.telemetry import configure_tracing, instrument_celery

    # The instrumentor reads settings.MIDDLEWARE, so the module must be known first.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    configure_tracing("web")
    # Batch chunks and training runs the web publishes carry the page request's trace.
    instrument_celery()
    # The hook hands the request's span to the access line, written after the span ended.
    DjangoInstrumentor().instrument(response_hook=keep_span_for_access_log)
    keep_health_middleware_first()


def keep_health_middleware_first() -> None:
    """Put the probe and scrape middleware back in front of the one the instrumentor inserted.

    The OpenTelemetry middleware reads the request's host, which raises
    DisallowedHost for kubelet probes and Prometheus scrapes addressed to the
    pod IP; they must be answered before anything validates the host.
    """
    from django.conf import settings

    health = "config.health.HealthCheckMiddleware"
    metrics = "config.metrics.MetricsMiddleware"
    middleware = [name for name in settings.MIDDLEWARE if name not in (health, metrics)]
    settings.MIDDLEWARE = [health, metrics, *middleware]


def worker_exit(server: Any, worker: Any) -> None:
    """Flush spans the worker still holds."""
    from inference_common.telemetry import shutdown_tracing

    shutdown_tracing()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live metrics (gauges) from the aggregate."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
