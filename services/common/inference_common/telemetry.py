"""OpenTelemetry set-up, configured only through the standard ``OTEL_*`` variables.

Call :func:`configure_tracing` *after* fork (gunicorn ``post_fork``, Celery
``worker_process_init``): the SDK's batch processor owns a background thread,
and a thread started in a parent process does not exist in its forked
children, whose spans would then silently never be exported.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from . import __version__

logger = logging.getLogger(__name__)

_provider: TracerProvider | None = None


def _exporter(name: str) -> SpanExporter | None:
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        )
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            return OTLPSpanExporter()
        if protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HTTPSpanExporter,
            )

            return HTTPSpanExporter()
        raise ValueError(f"unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} (grpc or http/protobuf)")
    if name == "console":
        return ConsoleSpanExporter()
    if name == "none":
        return None
    raise ValueError(f"unsupported OTEL_TRACES_EXPORTER {name!r} (otlp, console or none)")


def configure_tracing(default_service_name: str) -> TracerProvider | None:
    """Install a global tracer provider once per process; return it (None if disabled).

    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` override the
    default name, as the specification requires.
    """
    global _provider
    if _provider is not None:
        return _provider
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    attributes: dict[str, str] = {SERVICE_VERSION: __version__}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = default_service_name
    provider = TracerProvider(resource=Resource.create(attributes))
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    for name in filter(None, (part.strip() for part in names.split(","))):
        exporter = _exporter(name)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    logger.info("tracing configured (exporters: %s, pid %s)", names, os.getpid())
    return provider


def shutdown_tracing() -> None:
    """Flush and stop exporters; call when a forked child exits."""
    if _provider is not None:
        _provider.shutdown()


def current_trace_id() -> str:
    """Hex trace id of the active span, or an empty string outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
