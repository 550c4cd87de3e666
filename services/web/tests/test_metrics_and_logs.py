"""``/metrics`` (django-prometheus) and the JSON log format of the web tier."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.test import Client
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

from inference_common.logs import JsonFormatter


def _sample(client: Client, name: str, **labels: str) -> float:
    """The value of one sample on /metrics (0 when it is not there yet)."""
    text = client.get("/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_answer_a_scrape_without_a_login(client: Client) -> None:
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"] == "no-store"
    assert b"django_http_requests_before_middlewares_total" in response.content


def test_metrics_answer_a_scrape_addressed_to_the_pod_ip(client: Client) -> None:
    # Prometheus scrapes the pod by IP, which is not in ALLOWED_HOSTS.
    response = client.get("/metrics", HTTP_HOST="10.1.2.3:8000")

    assert response.status_code == 200


@pytest.mark.django_db
def test_requests_to_a_page_are_counted_by_view_and_timed(client_as: Callable[[str | None], Client]) -> None:
    client = client_as("viewer")
    name = "django_http_requests_total_by_view_transport_method_total"
    labels = {"view": "home", "transport": "http", "method": "GET"}
    before = _sample(client, name, **labels)

    for _ in range(3):
        assert client.get("/", follow=False).status_code in (200, 302)

    assert _sample(client, name, **labels) == before + 3
    latency = _sample(
        client, "django_http_requests_latency_seconds_by_view_method_count", view="home", method="GET"
    )
    assert latency >= 3


@pytest.mark.django_db
def test_responses_are_counted_by_status(client: Client) -> None:
    name = "django_http_responses_total_by_status_view_method_total"
    before = _sample(client, name, status="302", view="home", method="GET")

    # Anonymous: the login requirement answers with a redirect.
    assert client.get("/").status_code == 302

    assert _sample(client, name, status="302", view="home", method="GET") == before + 1


def test_scrapes_are_not_counted_as_traffic(client: Client) -> None:
    name = "django_http_requests_before_middlewares_total"
    before = _sample(client, name)
    client.get("/metrics")
    client.get("/metrics")
    assert _sample(client, name) == before


def test_the_probe_middleware_stays_first_and_django_prometheus_wraps_the_rest() -> None:
    middleware = settings.MIDDLEWARE
    assert middleware[0] == "config.health.HealthCheckMiddleware"
    assert middleware[1] == "config.metrics.MetricsMiddleware"
    assert middleware[2] == "django_prometheus.middleware.PrometheusBeforeMiddleware"
    assert middleware[-1] == "django_prometheus.middleware.PrometheusAfterMiddleware"


def test_the_web_logs_through_the_shared_json_formatter() -> None:
    formatter = settings.LOGGING["formatters"]["default"]
    assert formatter["()"] == "inference_common.logs.JsonFormatter"
    root = logging.getLogger()
    assert any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers)
    # Django's own loggers write through the root handler only, so nothing is logged twice.
    assert logging.getLogger("django").handlers == []
    assert logging.getLogger("django.server").handlers == []


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """Records reaching the root logger, formatted by the handler settings.LOGGING installed."""
    root = logging.getLogger()
    (handler,) = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
    lines: list[dict] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(handler.formatter.format(record)))

    capture = Capture()
    root.addHandler(capture)
    yield lines
    root.removeHandler(capture)


def test_a_line_logged_inside_a_span_carries_its_trace_id(
    json_lines: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite's settings disable the SDK; this provider only makes a span current.
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("GET /models/") as span:
        logging.getLogger("accounts.views").warning("inside the request")

    (line,) = [line for line in json_lines if line["message"] == "inside the request"]
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["service"] == "web"
    assert line["level"] == "WARNING"
