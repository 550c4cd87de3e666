"""Celery tasks: micro-batched sync predictions and async job chunks."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
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
from .batching import carried, serve_batch, trace_id_of
from .celery_app import app, settings
from .models import ModelLoadError, UnknownModelVersionError
from .records import PredictionRow
from .replies import ReplyPublisher
from .runtime import get_runtime
from .sampling import even_sample

logger = logging.getLogger(__name__)


_replies = ReplyPublisher(app.conf.broker_url, app.conf.broker_transport_options)


def publish_reply(reply_to: str | None, correlation_id: str, reply: PredictReply) -> None:
    """Send a sync answer to the api process waiting on ``reply_to``."""
    _replies.publish(reply_to, correlation_id, reply)


#: The flush timer of an eager MicroBatch (celery-batches needs one).
EAGER_TIMER_S = 0.01


class MicroBatch(Batches):
    """celery-batches, plus what a late-acking batch needs when things go wrong.

    Upstream acknowledges the batch's messages only when the batch returns; if
    the pool process dies, they would stay unacknowledged until the
    connection closes. Here a lost process requeues them at once, a batch
    killed by the hard time limit is answered with an error and dead-lettered,
    and the poison messages the task names in its result (task id -> reason)
    are rejected into the dead-letter queue instead of acknowledged.

    Batches also adapt to load: upstream hands the pool whatever arrived in
    each ``flush_interval``, so under load the pool's queue fills with many
    small batches, each paying the per-batch costs (pool round trip, one
    transaction and commit, reply messages). Here, while every pool process
    is busy, messages keep gathering in the buffer (up to ``flush_every``)
    and go out as one batch the moment a process is free. With a wait
    (``WORKER_BATCH_MAX_WAIT_MS`` > 0) an idle worker flushes within
    ``flush_interval``; without one (the default) a message that finds a
    process idle goes to it at once: batches form only while the pool is
    busy, so a request never waits for others that may not come.
    """

    #: Hand a message to an idle pool process on arrival (no wait configured).
    eager = False

    def __init__(self) -> None:
        super().__init__()
        self._in_flight = 0

    def _slots(self) -> int:
        return max(1, int(getattr(self._pool, "num_processes", 1) or 1))

    def Strategy(self, task: Any, app: Any, consumer: Any) -> Any:  # noqa: N802 (Celery's name)
        """celery-batches' message handler; when eager, followed by a flush if a process is idle."""
        buffer_message = super().Strategy(task, app, consumer)
        if not self.eager:
            return buffer_message

        def on_message(*args: Any, **kwargs: Any) -> None:
            buffer_message(*args, **kwargs)
            if self._in_flight < self._slots() and self._buffer.qsize():
                self._do_flush()

        return on_message

    def _do_flush(self) -> None:
        if self._in_flight >= self._slots() and self._buffer.qsize() < self.flush_every:
            return  # every process is busy: keep gathering; the next to finish flushes
        super()._do_flush()

    def _batch_done(self) -> None:
        self._in_flight -= 1
        if self._buffer.qsize():
            self._do_flush()

    def flush(self, requests: Collection[Request]) -> Any:
        """Hand the batch to the pool with completion, failure and time-limit handling."""
        self._in_flight += 1
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
            self._batch_done()

        def on_error(exc_info: Any) -> None:
            lost = isinstance(getattr(exc_info, "exception", None), WorkerLostError)
            logger.error("batch of %d failed (%s); requeue=%s", len(requests), exc_info, lost)
            for req in late:
                if not lost:
                    for item in carried(req):
                        failure = PredictReply.failure(item.task_id, "timeout", "prediction timed out")
                        publish_reply(item.reply_to, item.task_id, failure)
                req.reject(requeue=lost)
                if not lost:
                    metrics.count_dead_letter(PREDICT_TASK, metrics.TIMEOUT)
            self._batch_done()

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
    # Eager: the timer only backs up the flushes on arrival and on completion.
    flush_interval=settings.batch_max_wait_s or EAGER_TIMER_S,
    eager=settings.batch_max_wait_s == 0,
    acks_late=True,
)
def predict(requests: list[SimpleRequest]) -> dict[str, str]:
    """Answer a micro-batch of sync requests, then write their audit rows.

    A message carries one request, or several coalesced by an api process
    (answered together: one reply message per reply queue). Returns the
    poison messages of the batch (message id -> dead-letter reason);
    :meth:`MicroBatch.flush` rejects those into the dead-letter queue.
    """
    runtime = get_runtime(settings)
    batch = [item for req in requests for item in carried(req)]
    owner = {item.task_id: item.message_id for item in batch}
    grouped = {item.task_id for item in batch if item.grouped}
    answered: set[str] = set()
    held: dict[str, list[PredictReply]] = defaultdict(list)
    poison: dict[str, str] = {}

    def reply(reply_to: str | None, correlation_id: str, answer: PredictReply) -> None:
        if correlation_id in grouped and reply_to:
            held[reply_to].append(answer)
        else:
            publish_reply(reply_to, correlation_id, answer)
        answered.add(correlation_id)

    def send_held() -> None:
        for reply_to in list(held):
            _replies.publish_many(reply_to, held.pop(reply_to))

    def dead_letter(task_id: str, reason: str) -> None:
        poison[owner.get(task_id, task_id)] = reason

    try:
        # Audit rows are written after the replies: callers never wait for them.
        serve_batch(
            runtime.models,
            batch,
            reply,
            write=runtime.records.write_predictions,
            queue=settings.queues.predict,
            dead_letter=dead_letter,
            send_replies=send_held,
        )
        send_held()  # refusals of a batch with nothing valid to serve
    except SoftTimeLimitExceeded:
        send_held()
        for item in batch:
            if item.task_id not in answered:
                timed_out = PredictReply.failure(item.task_id, "timeout", "prediction timed out")
                publish_reply(item.reply_to, item.task_id, timed_out)
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
        rows = message.matrix()
    except ValueError:
        # Ragged legacy rows (a hand-made message): the same refusal as a wrong width.
        rows = np.empty((0, 0), dtype=np.float32)
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
    drift.observe(runtime.models.engine, model, *_drift_sample(runtime.models.engine, rows, outputs))
    return int(rows.shape[0])


def _drift_sample(engine: Any, rows: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most a drift window of a chunk's rows (and their outputs), spread evenly over the chunk.

    The monitor compares the last ``WORKER_DRIFT_WINDOW_ROWS`` rows with the
    baseline, so a chunk larger than that fills the window alone; binning all
    of its rows cost up to half the predict time (100 features), for no better
    estimate than an even sample of a window's size gives.
    """
    try:
        limit = drift.monitor(engine).window_rows
    except Exception:  # a bad setting: drift.observe says so once and stays out of the way
        return rows, outputs
    return even_sample(rows, outputs, limit)


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
