"""Every tier logs one JSON object per line, with the trace and span it was written in."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import ClassVar

import pytest
from opentelemetry.sdk.trace import TracerProvider

from inference_common import gunicorn_logs, logs
from inference_common.settings import ConfigError

KEYS = {"timestamp", "level", "logger", "message", "service", "trace_id", "span_id", "process"}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger back as pytest had it: configure_logging replaces its handlers."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture
def tracer(monkeypatch):
    """A tracer of a real SDK provider (not installed globally, exporting nothing)."""
    # conftest disables the SDK for the suite; this provider only makes spans current.
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    return TracerProvider().get_tracer("tests")


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "inference_api.dispatch", logging.INFO, __file__, 1, message, args or ("x",), None
    )
    record.__dict__.update(extra)
    return record


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_it_writes_every_key_with_empty_trace_ids_outside_a_span():
    line = json.loads(logs.JsonFormatter(service="api").format(_record()))
    assert set(line) >= KEYS
    assert line["message"] == "hello x"
    assert line["level"] == "INFO"
    assert line["logger"] == "inference_api.dispatch"
    assert line["service"] == "api"
    assert line["trace_id"] == ""
    assert line["span_id"] == ""
    assert line["timestamp"].endswith("Z")
    assert "T" in line["timestamp"]


def test_it_carries_the_trace_and_span_of_the_current_span(tracer):
    with tracer.start_as_current_span("request") as span:
        line = json.loads(logs.JsonFormatter(service="api").format(_record()))
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_ids_the_record_carries_win_over_the_current_span(tracer):
    with tracer.start_as_current_span("other"):
        record = _record(trace_id="a" * 32, span_id="b" * 16)
        line = json.loads(logs.JsonFormatter().format(record))
    assert (line["trace_id"], line["span_id"]) == ("a" * 32, "b" * 16)


def test_extras_become_keys_but_cannot_replace_the_standard_ones():
    record = _record(model="churn", rows=3, service="spoofed", payload=object())
    line = json.loads(logs.JsonFormatter(service="worker").format(record))
    assert line["model"] == "churn"
    assert line["rows"] == 3
    assert line["service"] == "worker"
    # Values JSON cannot hold are written as text rather than breaking the line.
    assert line["payload"].startswith("<object object")


def test_an_exception_is_one_key_and_the_record_stays_one_line():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed\nbadly", (), sys.exc_info())
    text = logs.JsonFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "failed\nbadly"
    assert "ValueError: bad" in line["exception"]


def test_configure_logging_writes_json_to_stdout_at_the_configured_level(capsys, monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.setenv("LOG_LEVEL", "warning")
    logs.configure_logging("web")
    logging.getLogger("some.module").info("not shown")
    logging.getLogger("some.module").warning("shown", extra={"request_id": "r-1"})
    (line,) = _lines(capsys.readouterr().out)
    assert line["message"] == "shown"
    assert line["service"] == "web"
    assert line["request_id"] == "r-1"


def test_the_otel_service_name_names_the_service_as_on_its_spans(capsys, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "api-canary")
    logs.configure_logging("api", level="info")
    logging.getLogger("x").info("hi")
    assert _lines(capsys.readouterr().out)[0]["service"] == "api-canary"


def test_text_format_is_one_readable_line_with_the_trace_id(capsys, monkeypatch, tracer):
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    logs.configure_logging("worker", level="info")
    with tracer.start_as_current_span("batch") as span:
        logging.getLogger("inference_worker.tasks").info("served %d", 3)
    out = capsys.readouterr().out.strip()
    assert "INFO" in out
    assert "worker" in out
    assert "served 3" in out
    assert format(span.get_span_context().trace_id, "032x") in out


def test_it_refuses_an_unknown_level_or_format(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        logs.configure_logging("api")
    monkeypatch.setenv("LOG_LEVEL", "info")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        logs.configure_logging("api")


def test_a_real_process_writes_only_json_lines_including_warnings_and_framework_loggers():
    script = """
import logging, warnings
from inference_common.logs import configure_logging
configure_logging("api", level="info")
logging.getLogger("gunicorn.error").info("booting")
logging.getLogger("django.request").warning("not found")
warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("app").exception("boom")
"""
    env = {"PATH": "/usr/bin:/bin", "LOG_FORMAT": "json", "PYTHONWARNINGS": "always"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    lines = _lines(result.stdout)
    assert result.stderr == ""
    assert [line["logger"] for line in lines] == ["gunicorn.error", "django.request", "py.warnings", "app"]
    for line in lines:
        assert set(line) >= KEYS
    assert "ZeroDivisionError" in lines[-1]["exception"]


def test_the_gunicorn_logger_knows_where_the_flask_instrumentation_keeps_the_span():
    from opentelemetry.instrumentation.flask import _ENVIRON_SPAN_KEY

    assert _ENVIRON_SPAN_KEY in gunicorn_logs.SPAN_ENVIRON_KEYS


def test_the_django_response_hook_leaves_the_span_in_the_environ(tracer):
    class Request:
        META: ClassVar[dict] = {}

    with tracer.start_as_current_span("GET /login") as span:
        gunicorn_logs.keep_span_for_access_log(span, Request, None)
    assert gunicorn_logs.request_span(Request.META) is span


def test_the_request_span_is_found_in_the_environ(tracer):
    with tracer.start_as_current_span("GET /x") as span:
        environ = {gunicorn_logs.SPAN_ENVIRON_KEYS[0]: span}
    assert gunicorn_logs.request_span(environ) is span
    assert gunicorn_logs.request_span({}) is None
