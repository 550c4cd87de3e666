"""Serve a micro-batch of sync requests with one predict call per model version.

Kept free of Celery so it can be tested directly: it takes decoded requests
and a ``reply`` callable, and returns the audit rows it produced.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from pydantic import ValidationError

from inference_common.contract import (
    BATCH_KWARG,
    PREDICT_TASK,
    PredictReply,
    PredictRequest,
    carried_requests,
)
from inference_common.schema import ROUTE_SHADOW
from inference_common.telemetry import (
    ATTR_BATCH_SIZE,
    ATTR_DESTINATION,
    ATTR_DEVICE,
    ATTR_MESSAGING_SYSTEM,
    ATTR_MODEL_NAME,
    ATTR_MODEL_VERSION,
)

from . import drift, metrics
from .models import ModelCache, ModelLoadError, UnknownModelVersionError
from .records import PredictionRow

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

#: reply(reply_to, correlation_id, reply) publishes one answer.
ReplyFn = Callable[[str | None, str, PredictReply], None]
#: dead_letter(task_id, reason) marks a message to be rejected into the dead-letter queue.
DeadLetterFn = Callable[[str, str], None]


def _no_dead_letter(task_id: str, reason: str) -> None:
    """Default of ``serve_batch``: callers that do not dead-letter ignore the marks."""


@dataclass
class Incoming:
    """One sync request as taken off the queue."""

    task_id: str
    reply_to: str | None
    payload: Any
    headers: dict[str, Any] = field(default_factory=dict)
    #: Id of the message that carried it (``task_id`` unless it shared a coalesced message).
    message_id: str = ""
    #: Came in a coalesced message: its answer goes out with the others of that reply queue.
    grouped: bool = False

    @property
    def context(self) -> otel_context.Context:
        """The trace context the api injected into the message headers."""
        return propagate.extract(self.headers)


def carried(req: Any) -> list[Incoming]:
    """The requests one message carries: itself, or each request of a coalesced message.

    ``req`` is what celery-batches hands the task for a message (``id``,
    ``reply_to``, ``kwargs``, ``request_dict``).

    A coalesced request's id, reply queue and trace context are its own; a
    payload too broken to name its id gets ``<message id>:<index>``, so it is
    still refused and its message dead-lettered.
    """
    kwargs = req.kwargs if isinstance(req.kwargs, dict) else {}
    if BATCH_KWARG not in kwargs:
        headers = dict(req.request_dict or {})
        return [Incoming(req.id, req.reply_to, kwargs.get("request"), headers, message_id=req.id)]
    items = []
    for index, payload in enumerate(carried_requests(kwargs) or [None]):
        fields = payload if isinstance(payload, dict) else {}
        request_id = fields.get("request_id")
        trace_headers = fields.get("trace")
        items.append(
            Incoming(
                task_id=request_id if isinstance(request_id, str) and request_id else f"{req.id}:{index}",
                reply_to=req.reply_to,
                payload=payload,
                headers=dict(trace_headers) if isinstance(trace_headers, dict) else {},
                message_id=req.id,
                grouped=True,
            )
        )
    return items


def trace_id_of(ctx: otel_context.Context) -> str:
    """Hex trace id carried by ``ctx``, or '' when the message carried none."""
    span_context = trace.get_current_span(ctx).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


@dataclass
class _Valid:
    incoming: Incoming
    message: PredictRequest
    ctx: otel_context.Context
    #: The message's rows as float32, decoded once (:func:`_as_matrix`).
    rows: np.ndarray


def serve_batch(
    models: ModelCache,
    batch: Sequence[Incoming],
    reply: ReplyFn,
    write: Callable[[list[PredictionRow]], None] | None = None,
    queue: str = "",
    dead_letter: DeadLetterFn = _no_dead_letter,
    send_replies: Callable[[], None] | None = None,
) -> list[PredictionRow]:
    """Predict every valid request of ``batch``, reply to each, return audit rows.

    ``write`` (if given) stores the audit rows after all replies are sent,
    inside the batch span so the database write belongs to the same trace.
    ``send_replies`` (if given) runs before it: for a ``reply`` that holds
    answers back to send them together.

    Requests for the same model version are stacked into one array and
    predicted in a single call: per-call overhead, not per-row model time,
    dominates small requests. ``queue`` names the queue the batch came from
    (span attribute and metric label).

    A request that cannot be served (malformed, unknown model version, a model
    that fails to load, rows that do not fit it) is answered with an error at
    once, so its caller never waits, and passed to ``dead_letter`` with the
    reason: retrying would not help a caller already answered, but the
    message is kept in the dead-letter queue for inspection.
    """
    started = time.time()
    metrics.BATCH_SIZE.labels(queue).observe(len(batch))
    valid: list[_Valid] = []
    for item in batch:
        try:
            message = PredictRequest.model_validate(item.payload)
        except ValidationError as exc:
            logger.error("refused malformed predict message %s: %s", item.task_id, exc.errors()[:3])
            refusal = PredictReply.failure(item.task_id, "invalid_message", "malformed message")
            reply(item.reply_to, item.task_id, refusal)
            metrics.count_task(PREDICT_TASK, "", "", models.device, metrics.REJECTED)
            dead_letter(item.task_id, metrics.MALFORMED)
            continue
        metrics.QUEUE_WAIT.labels(queue, message.model, message.version).observe(
            max(0.0, started - message.enqueued_at)
        )
        valid.append(_Valid(item, message, item.context, _as_matrix(message)))
    if not valid:
        return []

    links = [
        trace.Link(trace.get_current_span(v.ctx).get_span_context())
        for v in valid
        if trace.get_current_span(v.ctx).get_span_context().is_valid
    ]
    rows: list[PredictionRow] = []
    # The batch span continues the first request's trace (so a request that
    # was alone in its batch has one unbroken trace) and links to all others.
    with tracer.start_as_current_span(
        "inference.batch", context=valid[0].ctx, links=links, kind=trace.SpanKind.CONSUMER
    ) as span:
        span.set_attribute(ATTR_BATCH_SIZE, len(valid))
        span.set_attribute(ATTR_MESSAGING_SYSTEM, "rabbitmq")
        if queue:
            span.set_attribute(ATTR_DESTINATION, queue)
        groups: dict[int, list[_Valid]] = defaultdict(list)
        for v in valid:
            groups[v.message.model_version_id].append(v)
        for model_version_id, group in groups.items():
            rows.extend(_serve_group(models, model_version_id, group, len(valid), reply, dead_letter))
        if send_replies is not None:
            send_replies()
        if write is not None:
            write(rows)
        # In the batch span, so the line carries the (first) request's trace id.
        logger.info(
            "served a batch of %d requests", len(valid), extra={"batch_size": len(valid), "queue": queue}
        )
    return rows


def _serve_group(
    models: ModelCache,
    model_version_id: int,
    group: list[_Valid],
    batch_size: int,
    reply: ReplyFn,
    dead_letter: DeadLetterFn,
) -> list[PredictionRow]:
    first = group[0].message
    try:
        model = models.get(model_version_id)
    except ModelLoadError as exc:
        logger.error("cannot serve %s v%s: %s", first.model, first.version, exc)
        metrics.count_task(PREDICT_TASK, first.model, first.version, models.device, metrics.ERROR, len(group))
        unknown = isinstance(exc, UnknownModelVersionError)
        for v in group:
            dead_letter(v.incoming.task_id, metrics.UNKNOWN_MODEL if unknown else metrics.LOAD_FAILED)
        failed = [_fail(v, "model_load_failed", str(exc), batch_size, reply) for v in group]
        # An audit row must reference a registered version: one for an unknown id
        # would fail the whole batch's write (foreign key) and lose the others' rows.
        return [] if unknown else failed

    accepted: list[tuple[_Valid, np.ndarray]] = []
    rows: list[PredictionRow] = []
    for v in group:
        if v.rows.ndim != 2 or v.rows.shape[1] != model.n_features:
            detail = f"expected {model.n_features} features per row"
            rows.append(_fail(v, "invalid_input", detail, batch_size, reply))
            metrics.count_task(PREDICT_TASK, model.name, model.version, model.device, metrics.ERROR)
            dead_letter(v.incoming.task_id, metrics.BAD_SHAPE)
        else:
            accepted.append((v, v.rows))
    if not accepted:
        return rows

    stacked = np.concatenate([array for _, array in accepted]) if len(accepted) > 1 else accepted[0][1]
    with tracer.start_as_current_span("xgboost.predict") as span:
        span.set_attribute(ATTR_MODEL_NAME, model.name)
        span.set_attribute(ATTR_MODEL_VERSION, model.version)
        span.set_attribute("inference.rows", int(stacked.shape[0]))
        span.set_attribute(ATTR_DEVICE, model.device)
        started = time.perf_counter()
        outputs = model.predict(stacked)
        elapsed = time.perf_counter() - started
        predict_ms = elapsed * 1000
    metrics.PREDICT_DURATION.labels(model.name, model.version, model.device).observe(elapsed)

    offset = 0
    for v, array in accepted:
        own = outputs[offset : offset + len(array)]
        offset += len(array)
        answer = PredictReply(
            request_id=v.message.request_id,
            outputs=own.reshape(-1).tolist(),
            shape=list(own.shape),
            device=model.device,
            batch_size=batch_size,
        )
        _reply_in_trace(v, answer, reply)
        rows.append(_row(v, array, own, predict_ms, batch_size, model.device, "ok", ""))
    metrics.count_task(PREDICT_TASK, model.name, model.version, model.device, metrics.OK, len(accepted))
    # After the replies, so drift bookkeeping never delays an answer; it never raises.
    drift.observe(models.engine, model, stacked, outputs)
    return rows


def _reply_in_trace(v: _Valid, answer: PredictReply, reply: ReplyFn) -> None:
    # Nobody waits for a shadow copy's answer; it is only recorded. Celery
    # fills an empty reply_to with its own id, so the route decides, not reply_to.
    if v.message.route == ROUTE_SHADOW:
        return
    # A span per request, in that request's own trace, covers its reply.
    with tracer.start_as_current_span("inference.reply", context=v.ctx, kind=trace.SpanKind.PRODUCER) as span:
        span.set_attribute(ATTR_MODEL_NAME, v.message.model)
        span.set_attribute(ATTR_MODEL_VERSION, v.message.version)
        span.set_attribute(ATTR_MESSAGING_SYSTEM, "rabbitmq")
        # The reply queue is the api process's own (exclusive, per process), not a shared one.
        if v.incoming.reply_to:
            span.set_attribute(ATTR_DESTINATION, v.incoming.reply_to)
        span.set_attribute("inference.error", answer.error_code or "")
        reply(v.incoming.reply_to, v.incoming.task_id, answer)


def _fail(v: _Valid, code: str, detail: str, batch_size: int, reply: ReplyFn) -> PredictionRow:
    _reply_in_trace(v, PredictReply.failure(v.message.request_id, code, detail), reply)
    return _row(v, v.rows, None, 0.0, batch_size, "", "error", f"{code}: {detail}")


def _as_matrix(message: PredictRequest) -> np.ndarray:
    """The rows as a float32 matrix, from either encoding (validation already decoded ``rows_b64``).

    Ragged JSON rows give an empty (n, 0) matrix: refused by the width check
    as invalid input, like rows of the wrong width, not as a malformed message.
    """
    try:
        return message.matrix()
    except ValueError:
        return np.empty((len(message.rows or ()), 0), dtype=np.float32)


def _row(
    v: _Valid,
    inputs: np.ndarray,
    outputs: np.ndarray | None,
    predict_ms: float,
    batch_size: int,
    device: str,
    status: str,
    error: str,
) -> PredictionRow:
    return PredictionRow(
        request_id=v.message.request_id,
        api_key_id=v.message.api_key_id,
        model_version_id=v.message.model_version_id,
        protocol=v.message.protocol,
        inputs=inputs,
        outputs=outputs,
        latency_ms=max(0.0, (time.time() - v.message.enqueued_at) * 1000),
        predict_ms=predict_ms,
        batch_size=batch_size,
        device=device,
        trace_id=trace_id_of(v.ctx),
        status=status,
        error=error,
        route=v.message.route,
        shadow_of=v.message.shadow_of or "",
    )
