"""OpenTelemetry set-up, configured only through the standard ``OTEL_*`` variables.

Call :func:`configure_tracing` *after* fork (gunicorn ``post_fork``, Celery
``worker_process_init``): the SDK's batch processor owns a background thread,
and a thread started in a parent process does not exist in its forked
children, whose spans would then silently never be exported.

Span attributes every tier uses (the ``ATTR_*`` names below): ``model.name``
and ``model.version`` (api server span, ``model.load``, ``xgboost.predict``,
``inference.reply``, job chunks), ``inference.batch.size`` (``inference.batch``),
``inference.device``, ``inference.rows``, ``inference.request.id`` (the
``X-Request-ID`` the client got) and ``messaging.destination.name`` (the queue,
on publish, batch and reply spans). Feature values and API keys are never
put on a span.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from . import __version__
from .settings import env_str

logger = logging.getLogger(__name__)

#: Span attribute names used by every tier (model identity, batch, queue). The
#: ``model.*`` names predate this list and are kept so stored traces stay comparable.
ATTR_MODEL_NAME = "model.name"
ATTR_MODEL_VERSION = "model.version"
ATTR_BATCH_SIZE = "inference.batch.size"
ATTR_DEVICE = "inference.device"
ATTR_DESTINATION = "messaging.destination.name"
ATTR_MESSAGING_SYSTEM = "messaging.system"

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
    provider = TracerProvider(resource=build_resource(default_service_name))
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    for name in filter(None, (part.strip() for part in names.split(","))):
        exporter = _exporter(name)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    logger.info("tracing configured (exporters: %s, pid %s)", names, os.getpid())
    return provider


def build_resource(default_service_name: str) -> Resource:
    """The resource of this process's spans, following the semantic conventions.

    Our defaults (service name and version, ``deployment.environment`` from
    ``DEPLOYMENT_ENVIRONMENT``, host name, pid) give way to anything that
    ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` sets, as the
    specification requires. Kubernetes attributes (pod, namespace, node) are
    added by the collector's k8sattributes processor, not guessed here.
    """
    defaults: dict[str, str | int] = {
        SERVICE_NAME: default_service_name,
        SERVICE_VERSION: __version__,
        "deployment.environment": env_str("DEPLOYMENT_ENVIRONMENT", "local"),
        "host.name": socket.gethostname(),
        # Read after fork, so each gunicorn worker or Celery pool process reports its own pid.
        "process.pid": os.getpid(),
    }
    # Resource.create lets the attributes it is given win over the environment;
    # dropping the keys the environment sets turns that round.
    from_env = OTELResourceDetector().detect().attributes
    return Resource.create({key: value for key, value in defaults.items() if key not in from_env})


def instrument_celery() -> None:
    """Trace Celery publishing and task runs, with the queue named as the conventions ask.

    The Celery instrumentation records the routing key only under the
    deprecated ``messaging.destination``; a publish handler connected after it
    adds ``messaging.destination.name`` to its (then current) publish span.
    """
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return
    instrumentor.instrument()
    signals.before_task_publish.connect(_name_publish_destination, weak=False)


def _name_publish_destination(routing_key: str | None = None, **_: Any) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(ATTR_MESSAGING_SYSTEM, "rabbitmq")
        if routing_key:
            span.set_attribute(ATTR_DESTINATION, routing_key)


def shutdown_tracing() -> None:
    """Flush and stop exporters; call when a forked child exits."""
    if _provider is not None:
        _provider.shutdown()


def current_trace_id() -> str:
    """Hex trace id of the active span, or an empty string outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
