"""A real OTLP/gRPC trace receiver for tests (the collector's wire protocol).

Services export to it exactly as they would to an OpenTelemetry collector;
tests then look at the spans it received.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, flattened for assertions."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]
    links: tuple[str, ...]
    #: OTLP span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    kind: int = 0
    #: Resource attributes of the exporting process (service.*, process.pid, ...).
    resource: dict[str, object] = field(default_factory=dict)
    #: (trace id, span id) of every link.
    link_contexts: tuple[tuple[str, str], ...] = ()


def _value(any_value: object) -> object:
    kind = any_value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(any_value, kind) if kind else None


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: OtlpReceiver) -> None:
        self._sink = sink

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self._sink.add(
                        ReceivedSpan(
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={kv.key: _value(kv.value) for kv in span.attributes},
                            links=tuple(link.trace_id.hex() for link in span.links),
                            kind=span.kind,
                            resource=resource,
                            link_contexts=tuple(
                                (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                            ),
                        )
                    )
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """Listens on 127.0.0.1:<port> and keeps every span it receives."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        """Value for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        """Start serving."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop(grace=None)

    def add(self, span: ReceivedSpan) -> None:
        """Record a span (called by the servicer)."""
        with self._lock:
            self._spans.append(span)

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        """Spans received so far, optionally of one trace."""
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]

    def wait_for(self, predicate, timeout: float = 20.0) -> list[ReceivedSpan]:
        """Poll until ``predicate(spans)`` is true; return the spans (or fail on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans()
            if predicate(spans):
                return spans
            time.sleep(0.1)
        raise AssertionError(f"spans did not arrive within {timeout}s; got {[s.name for s in self.spans()]}")
