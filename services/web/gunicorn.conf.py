"""gunicorn settings for the web tier; tracing starts after fork."""

from __future__ import annotations

import os
from typing import Any

from inference_common.settings import env_int

bind = f"0.0.0.0:{env_int('WEB_PORT', 8000, minimum=1, maximum=65535)}"
workers = env_int("WEB_WORKERS", 2, minimum=1)
worker_class = "gthread"
threads = env_int("WEB_THREADS", 4, minimum=1)
preload_app = False
timeout = 60
wsgi_app = "config.wsgi:application"


def post_fork(server: Any, worker: Any) -> None:
    """Start tracing in the worker, before Django loads, so its middleware is instrumented."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    from inference_common.telemetry import configure_tracing

    # The instrumentor reads settings.MIDDLEWARE, so the module must be known first.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    configure_tracing("web")
    DjangoInstrumentor().instrument()
    keep_health_middleware_first()


def keep_health_middleware_first() -> None:
    """Put the probe middleware back in front of the one the instrumentor inserted.

    The OpenTelemetry middleware reads the request's host, which raises
    DisallowedHost for kubelet probes addressed to the pod IP; probes must be
    answered before anything validates the host.
    """
    from django.conf import settings

    health = "config.health.HealthCheckMiddleware"
    middleware = [name for name in settings.MIDDLEWARE if name != health]
    settings.MIDDLEWARE = [health, *middleware]


def worker_exit(server: Any, worker: Any) -> None:
    """Flush spans the worker still holds."""
    from inference_common.telemetry import shutdown_tracing

    shutdown_tracing()
