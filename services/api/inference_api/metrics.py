"""Prometheus metrics of the api, multi-process safe under gunicorn.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py does), every worker
process writes its samples to that directory and ``/metrics`` aggregates them.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "inference_api_requests_total", "HTTP requests handled by the api.", ["method", "endpoint", "status"]
)
LATENCY = Histogram(
    "inference_api_request_duration_seconds",
    "Time to answer an HTTP request, by endpoint and status.",
    ["method", "endpoint", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PUBLISH_FAILURES = Counter(
    "inference_api_publish_failures_total", "Messages the broker did not accept (answered 503)."
)

ROUTED = Counter(
    "inference_api_routed_requests_total",
    "Sync requests published, by how their version was chosen (pinned, production, canary, shadow).",
    ["route"],
)
SHADOW_PUBLISH_FAILURES = Counter(
    "inference_api_shadow_publish_failures_total",
    "Shadow copies the broker did not take; the client's request was answered regardless.",
)

# Response cache (docs/response-cache.md); only models whose policy enables it are counted.
CACHE_HITS = Counter(
    "inference_api_response_cache_hits_total",
    "Sync requests answered from the response cache (never published).",
    ["model"],
)
CACHE_MISSES = Counter(
    "inference_api_response_cache_misses_total",
    "Sync requests of cache-enabled models not answered from the response cache (published as usual), "
    "lookups that failed included.",
    ["model"],
)
CACHE_ERRORS = Counter(
    "inference_api_response_cache_errors_total",
    "Response cache operations that failed (Redis down or slow); a failed lookup is served as a miss.",
    ["operation"],
)
CACHE_STORE_SKIPS = Counter(
    "inference_api_response_cache_store_skips_total",
    "Answers not stored: larger than CACHE_MAX_ENTRY_BYTES, or computed under an outdated generation.",
    ["reason"],
)
CACHE_AUDIT_ROWS = Counter(
    "inference_api_response_cache_audit_rows_total",
    "Audit rows of cache hits, by how they were written (background batch, or synchronously when "
    "the buffer was full) or 'failed' when the database refused them after retries.",
    ["outcome"],
)


def init_app(app: Flask) -> None:
    """Time every request and expose ``GET /metrics``."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        # The route template (not the raw path) keeps label cardinality bounded.
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        status = str(response.status_code)
        REQUESTS.labels(request.method, endpoint, status).inc()
        if started is not None:
            LATENCY.labels(request.method, endpoint, status).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            payload = generate_latest(registry)
        else:
            payload = generate_latest()
        return Response(payload, mimetype=CONTENT_TYPE_LATEST)
