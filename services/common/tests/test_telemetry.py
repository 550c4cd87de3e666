"""Tracing set-up follows the standard OTEL_* variables and never guesses."""

from __future__ import annotations

import os
import socket

import pytest
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from inference_common import __version__, telemetry


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


def test_the_resource_names_service_version_environment_host_and_pid(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.setenv("DEPLOYMENT_ENVIRONMENT", "staging")
    attributes = telemetry.build_resource("worker").attributes
    assert attributes["service.name"] == "worker"
    assert attributes["service.version"] == __version__
    assert attributes["deployment.environment"] == "staging"
    assert attributes["host.name"] == socket.gethostname()
    assert attributes["process.pid"] == os.getpid()


def test_the_environment_defaults_to_local(monkeypatch):
    monkeypatch.delenv("DEPLOYMENT_ENVIRONMENT", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert telemetry.build_resource("api").attributes["deployment.environment"] == "local"


def test_otel_variables_win_over_the_defaults(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "api-canary")
    monkeypatch.setenv("DEPLOYMENT_ENVIRONMENT", "ignored")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,service.version=9.9.9")
    attributes = telemetry.build_resource("api").attributes
    assert attributes["service.name"] == "api-canary"
    assert attributes["deployment.environment"] == "prod"
    assert attributes["service.version"] == "9.9.9"
