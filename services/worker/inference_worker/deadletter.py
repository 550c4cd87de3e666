"""Poison messages Celery refuses before any task runs: rejected into the dead-letter queue, counted.

Celery itself rejects (without requeue, so RabbitMQ dead-letters them) a
message of an unknown format, of an unregistered task or an invalid one, but
it *acknowledges* a body it cannot decode (not JSON, a bad content encoding):
that message would vanish without a trace. :class:`DeadLetterPoison` makes
the consumer reject it instead, and counts every one of these refusals in
``inference_worker_dead_lettered_total``. All of this runs in the worker's
main process, where the consumer lives.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps, signals

from inference_common.contract import JOB_CHUNK_TASK, PREDICT_TASK

from . import metrics

logger = logging.getLogger(__name__)

#: Task label of a message that names no task of ours (keeps the label bounded).
UNKNOWN_TASK_LABEL = "unknown"
_OUR_TASKS = frozenset({PREDICT_TASK, JOB_CHUNK_TASK})


def task_label(message: Any) -> str:
    """The task a raw message claims to be for, if it is one of ours; otherwise ``unknown``."""
    headers = getattr(message, "headers", None)
    name = headers.get("task") if isinstance(headers, dict) else None
    return name if name in _OUR_TASKS else UNKNOWN_TASK_LABEL


def reject_undecodable(consumer: Any, message: Any, exc: Exception) -> None:
    """Dead-letter a message whose body cannot be decoded (Celery's default acks it away)."""
    # Only the size and types: the body may hold anything, keys included.
    logger.error(
        "dead-lettering an undecodable message (%d bytes, content type %r): %s",
        len(message.body or b""),
        message.content_type,
        type(exc).__name__,
    )
    message.reject_log_error(logger, consumer.connection_errors, requeue=False)
    metrics.count_dead_letter(task_label(message), metrics.UNDECODABLE)


class DeadLetterPoison(bootsteps.Step):
    """Consumer step: reject undecodable messages into the dead-letter queue.

    The consumer looks ``on_decode_error`` up on itself for every message, so
    replacing the bound method on the instance (before its steps start) is enough.
    """

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        parent.on_decode_error = lambda message, exc: reject_undecodable(parent, message, exc)


@signals.task_rejected.connect
def _on_task_rejected(message: Any = None, exc: Exception | None = None, **_: Any) -> None:
    # Sent after Celery rejected a message of an unknown format (exc is None) or
    # an invalid one (a disallowed content type, broken headers).
    reason = metrics.UNDECODABLE if exc is None else metrics.MALFORMED
    metrics.count_dead_letter(task_label(message), reason)


@signals.task_unknown.connect
def _on_task_unknown(message: Any = None, **_: Any) -> None:
    # A well-formed message for a task this worker does not have.
    metrics.count_dead_letter(UNKNOWN_TASK_LABEL, metrics.UNKNOWN_TASK)
