"""Celery tasks: micro-batched sync predictions and async job chunks."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any, NoReturn

import numpy as np
from billiard.exceptions import WorkerLostError
from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from celery.worker.request import Request
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task
from opentelemetry import trace
from pydantic import ValidationError

from inference_common.contract import JOB_CHUNK_TASK, PREDICT_TASK, JobChunk, PredictReply
from inference_common.schema import ROUTE_JOB
from inference_common.telemetry import ATTR_DESTINATION, ATTR_MODEL_NAME, ATTR_MODEL_VERSION

from . import drift, metrics
from .batching import Incoming, serve_batch, trace_id_of
from .celery_app import app, settings
from .models import ModelLoadError, UnknownModelVersionError
from .records import PredictionRow
from .replies import ReplyPublisher
from .runtime import get_runtime

logger = logging.getLogger(__name__)


_replies = ReplyPublisher(app.conf.broker_url, app.conf.broker_transport_options)


def publish_reply(reply_to: str | None, correlation_id: str, reply: PredictReply) -> None:
    """Send a sync answer to the api process waiting on ``reply_to``."""
    _replies.publish(reply_to, correlation_id, reply)


class MicroBatch(Batches):
    """celery-batches, plus what a late-acking batch needs when things go wrong.

    Upstream acknowledges the batch's messages only when the batch returns; if
    the pool process dies, they would stay unacknowledged until the
    connection closes. Here a lost process requeues them at once, a batch
    killed by the hard time limit is answered with an error and dead-lettered,
    and the poison messages the task names in its result (task id -> reason)
    are rejected into the dead-letter queue instead of acknowledged.
    """

    def flush(self, requests: Collection[Request]) -> Any:
        """Hand the batch to the pool with completion, failure and time-limit handling."""
        serializable = ([SimpleRequest.from_request(r) for r in requests],)
        late = [r for r in requests if r.task.acks_late]
        early = [r for r in requests if not r.task.acks_late]

        def on_accepted(pid: int, time_accepted: float) -> None:
            for req in early:
                req.acknowledge()

        def on_return(result: Any) -> None:
            # None when the task raised (apply_batches_task logs it): the
            # requests were answered with errors, nothing to dead-letter.
            poison: dict[str, str] = result if isinstance(result, dict) else {}
            for req in late:
                reason = poison.get(req.id)
                if reason is None:
                    req.acknowledge()
                else:
                    req.reject(requeue=False)
                    metrics.count_dead_letter(PREDICT_TASK, reason)

        def on_error(exc_info: Any) -> None:
            lost = isinstance(getattr(exc_info, "exception", None), WorkerLostError)
            logger.error("batch of %d failed (%s); requeue=%s", len(requests), exc_info, lost)
            for req in late:
                if not lost:
                    publish_reply(
                        req.reply_to, req.id, PredictReply.failure(req.id, "timeout", "prediction timed out")
                    )
                req.reject(requeue=lost)
                if not lost:
                    metrics.count_dead_letter(PREDICT_TASK, metrics.TIMEOUT)

        return self._pool.apply_async(
            apply_batches_task,
            (self, serializable, 0, None),
            accept_callback=on_accepted,
            callback=on_return,
            error_callback=on_error,
            soft_timeout=settings.soft_time_limit_s,
            timeout=settings.time_limit_s,
        )


@app.task(
    base=MicroBatch,
    name=PREDICT_TASK,
    flush_every=settings.batch_max_size,
    flush_interval=settings.batch_max_wait_s,
    acks_late=True,
)
def predict(requests: list[SimpleRequest]) -> dict[str, str]:
    """Answer a micro-batch of sync requests, then write their audit rows.

    Returns the poison messages of the batch (task id -> dead-letter reason);
    :meth:`MicroBatch.flush` rejects those into the dead-letter queue.
    """
    runtime = get_runtime(settings)
    batch = [
        Incoming(
            task_id=req.id,
            reply_to=req.reply_to,
            payload=(req.kwargs or {}).get("request"),
            headers=dict(req.request_dict or {}),
        )
        for req in requests
    ]
    answered: set[str] = set()
    poison: dict[str, str] = {}

    def reply(reply_to: str | None, correlation_id: str, answer: PredictReply) -> None:
        publish_reply(reply_to, correlation_id, answer)
        answered.add(correlation_id)

    try:
        # Audit rows are written after the replies: callers never wait for them.
        serve_batch(
            runtime.models,
            batch,
            reply,
            write=runtime.records.write_predictions,
            queue=settings.queues.predict,
            dead_letter=poison.__setitem__,
        )
    except SoftTimeLimitExceeded:
        for item in batch:
            if item.task_id not in answered:
                timed_out = PredictReply.failure(item.task_id, "timeout", "prediction timed out")
                reply(item.reply_to, item.task_id, timed_out)
                model, version = _model_labels(item.payload)
                metrics.count_task(PREDICT_TASK, model, version, runtime.device, metrics.ERROR)
        raise
    return poison


def _model_labels(payload: Any) -> tuple[str, str]:
    """Model name and version of a raw predict payload, for metric labels ('' if absent)."""
    if not isinstance(payload, dict):
        return "", ""
    return str(payload.get("model", "")), str(payload.get("version", ""))


@app.task(bind=True, name=JOB_CHUNK_TASK, acks_late=True, max_retries=settings.max_retries)
def predict_chunk(self: Task, chunk: Any = None, *extra_args: Any, **extra_kwargs: Any) -> int:
    """Predict one chunk of an async job and store it; returns the rows done.

    The signature takes anything on purpose: a hand-made message with other
    arguments would otherwise fail with a TypeError, which Celery acknowledges
    (and so loses); here it is refused as malformed and dead-lettered.
    """
    try:
        if extra_args or extra_kwargs:
            raise ValueError(f"unexpected arguments {len(extra_args)} positional, {sorted(extra_kwargs)[:5]}")
        message = JobChunk.model_validate(chunk)
    except (ValidationError, ValueError) as exc:
        detail = exc.errors()[:3] if isinstance(exc, ValidationError) else str(exc)
        logger.error("dead-lettering malformed job chunk %s: %s", self.request.id, detail)
        metrics.count_task(JOB_CHUNK_TASK, "", "", get_runtime(settings).device, metrics.REJECTED)
        metrics.count_dead_letter(JOB_CHUNK_TASK, metrics.MALFORMED)
        raise Reject("malformed job chunk", requeue=False) from exc
    runtime = get_runtime(settings)
    span = trace.get_current_span()
    span.set_attribute(ATTR_MODEL_NAME, message.model)
    span.set_attribute(ATTR_MODEL_VERSION, message.version)
    span.set_attribute(ATTR_DESTINATION, settings.queues.jobs)
    span.set_attribute("job.id", str(message.job_id))
    span.set_attribute("job.chunk", message.chunk_index)
    if not self.request.retries:
        # A retried chunk waited for its back-off, not for the queue.
        metrics.QUEUE_WAIT.labels(settings.queues.jobs, message.model, message.version).observe(
            max(0.0, time.time() - message.enqueued_at)
        )
    try:
        model = runtime.models.get(message.model_version_id)
    except UnknownModelVersionError as exc:
        # An id that is not registered will not become one by waiting: no retries.
        _fail_and_dead_letter(message, exc, metrics.UNKNOWN_MODEL)
    except ModelLoadError as exc:
        # A missing or half-copied artifact may appear: retry, then dead-letter.
        _retry_or_fail(self, message, exc, metrics.LOAD_FAILED)
        raise
    try:
        rows = np.asarray(message.rows, dtype=np.float32)
    except ValueError:
        # Ragged rows (a hand-made message): the same refusal as a wrong width.
        rows = np.empty((len(message.rows), 0), dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != model.n_features:
        runtime.records.fail_job(message.job_id, f"chunk {message.chunk_index}: wrong feature count")
        metrics.count_task(JOB_CHUNK_TASK, model.name, model.version, model.device, metrics.REJECTED)
        metrics.count_dead_letter(JOB_CHUNK_TASK, metrics.BAD_SHAPE)
        raise Reject("wrong feature count", requeue=False)
    started = time.perf_counter()
    outputs = model.predict(rows)
    elapsed = time.perf_counter() - started
    predict_ms = elapsed * 1000
    metrics.PREDICT_DURATION.labels(model.name, model.version, model.device).observe(elapsed)
    record = PredictionRow(
        request_id=f"{message.job_id.hex}:{message.chunk_index}",
        api_key_id=message.api_key_id,
        model_version_id=message.model_version_id,
        protocol="job",
        inputs=rows,
        outputs=outputs,
        latency_ms=max(0.0, (time.time() - message.enqueued_at) * 1000),
        predict_ms=predict_ms,
        batch_size=1,
        device=model.device,
        trace_id=trace_id_of(_message_context(self)),
        status="ok",
        job_id=message.job_id,
        route=ROUTE_JOB,
    )
    try:
        runtime.records.write_chunk(message.job_id, message.chunk_index, message.row_offset, outputs, record)
    except Exception as exc:  # database down for longer than the in-place retries
        _retry_or_fail(self, message, exc, metrics.STORE_FAILED)
        raise
    metrics.count_task(JOB_CHUNK_TASK, model.name, model.version, model.device, metrics.OK)
    # Only once stored: a retried chunk is not counted twice.
    drift.observe(runtime.models.engine, model, rows, outputs)
    return int(rows.shape[0])


def _message_context(task: Task) -> Any:
    from opentelemetry import propagate

    headers = {key: getattr(task.request, key, None) for key in ("traceparent", "tracestate")}
    return propagate.extract({k: v for k, v in headers.items() if v})


def _retry_or_fail(task: Task, message: JobChunk, exc: Exception, reason: str) -> NoReturn:
    """Retry with back-off; once retries are spent, fail the job and dead-letter the chunk."""
    device = get_runtime(settings).device
    if task.request.retries < (task.max_retries or 0):
        metrics.count_task(JOB_CHUNK_TASK, message.model, message.version, device, metrics.RETRY)
        raise task.retry(exc=exc, countdown=min(2**task.request.retries, 30))
    _fail_and_dead_letter(message, exc, reason)


def _fail_and_dead_letter(message: JobChunk, exc: Exception, reason: str) -> NoReturn:
    """Fail the chunk's job visibly and reject the chunk into the dead-letter queue."""
    runtime = get_runtime(settings)
    metrics.count_task(JOB_CHUNK_TASK, message.model, message.version, runtime.device, metrics.ERROR)
    runtime.records.fail_job(message.job_id, f"chunk {message.chunk_index}: {exc}")
    metrics.count_dead_letter(JOB_CHUNK_TASK, reason)
    raise Reject(str(exc), requeue=False) from exc
