"""Prometheus ``/metrics`` of the web tier (django-prometheus's counters and histograms).

Under gunicorn every worker process counts its own requests; with
``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py sets it) each writes its
samples to that directory and a scrape adds them up, so whichever worker
answers the scrape reports the whole pod. Without it (tests, ``runserver``)
the process's own registry is exported.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

METRICS_PATH = "/metrics"


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # A fresh registry per scrape: the collector reads the files each time.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@login_not_required
def metrics(request: HttpRequest) -> HttpResponse:
    """Every metric of this pod in the Prometheus text format."""
    response = HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


class MetricsMiddleware:
    """Answer ``GET /metrics`` before host validation, sessions and login.

    Prometheus scrapes the pod by its IP over plain http, like the kubelet's
    probes, so ALLOWED_HOSTS and the production HTTPS redirect would turn it
    away; it goes second in MIDDLEWARE, right after the probe middleware, and
    before django-prometheus's own, so scrapes are not counted as traffic.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Serve the scrape directly; pass everything else down the stack."""
        if request.path_info == METRICS_PATH and request.method in ("GET", "HEAD"):
            return metrics(request)
        return self.get_response(request)
