"""Tracing set-up follows the standard OTEL_* variables and never guesses."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from inference_common import telemetry


def test_it_installs_nothing_when_the_sdk_is_disabled(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "TRUE")
    monkeypatch.setattr(telemetry, "_provider", None)
    assert telemetry.configure_tracing("api") is None
    assert telemetry._provider is None


def test_the_none_exporter_exports_nothing_and_console_prints():
    assert telemetry._exporter("none") is None
    assert isinstance(telemetry._exporter("console"), ConsoleSpanExporter)


def test_it_rejects_an_unknown_exporter():
    with pytest.raises(ValueError, match="unsupported OTEL_TRACES_EXPORTER 'zipkin'"):
        telemetry._exporter("zipkin")


def test_it_rejects_an_unknown_otlp_protocol(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    with pytest.raises(ValueError, match="unsupported OTEL_EXPORTER_OTLP_PROTOCOL 'http/json'"):
        telemetry._exporter("otlp")


def test_the_traces_protocol_overrides_the_general_one(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "bogus")
    with pytest.raises(ValueError, match="'bogus'"):
        telemetry._exporter("otlp")


def test_there_is_no_trace_id_outside_a_trace():
    assert telemetry.current_trace_id() == ""
