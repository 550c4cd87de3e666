"""Publish work to RabbitMQ and wait for the worker's answer.

Each api process owns one reply queue and one consumer thread. A sync
request registers a future under its request id (also the Celery task id and
the reply's correlation id), publishes with publisher confirms, and waits.
Publishing happens only after the reply queue exists, so an answer can never
arrive before someone is listening.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from celery import Celery
from kombu import Connection, Consumer, Queue
from opentelemetry import propagate, trace

from inference_common.broker import celery_config, declare_topology, task_queues, transport_options
from inference_common.contract import (
    BATCH_KWARG,
    JOB_CHUNK_TASK,
    PREDICT_TASK,
    REPLIES_KWARG,
    PredictReply,
    Queues,
    new_request_id,
)
from inference_common.telemetry import ATTR_DESTINATION, ATTR_MESSAGING_SYSTEM

from .coalescing import Coalescer
from .errors import ApiError
from .publishing import TaskPublisher

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

RETRY_AFTER_S = "5"

#: Tasks sent as transient messages. A sync request lives as long as its caller
#: waits: its answer can only reach this process's reply queue, which the broker
#: drops when it restarts, and the caller is then answered 503 (``reply_lost``).
#: Writing it to disk first (persistent) doubled the publish confirm's wait and
#: would only let a worker answer, after a restart, a caller already failed.
#: Job chunks outlive their publisher, so they stay persistent.
TRANSIENT_TASKS = frozenset({PREDICT_TASK})


class BrokerUnavailableError(ApiError):
    """The broker cannot take the message now: 503, nothing was accepted."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            503,
            "broker_unavailable",
            f"the message broker is unavailable: {detail}; retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )


def _remote_task(*_: Any, **__: Any) -> None:
    raise RuntimeError("this task runs on the worker; the api only publishes it")


def make_celery(broker_url: str, queues: Queues) -> Celery:
    """A publish-only Celery app that shares the worker's topology."""
    app = Celery("inference_api", set_as_current=False)
    app.conf.update(celery_config(broker_url, queues))
    # Declared by name so the publish signal (and its trace instrumentation)
    # sees a known task; the body only runs on the worker. Shared, because the
    # instrumentation looks the task up in the *current* app's registry: with
    # no task found there it keeps no handle on its publish span, which then
    # ends before the message is sent and is never current for other hooks.
    for name in (PREDICT_TASK, JOB_CHUNK_TASK):
        app.task(name=name, shared=True)(_remote_task)
    return app


class Dispatcher:
    """Publishes tasks and routes replies back to the waiting request threads."""

    def __init__(self, broker_url: str, queues: Queues, max_coalesced: int = 32) -> None:
        self._broker_url = broker_url
        self._queues = queues
        self.celery = make_celery(broker_url, queues)
        self._publisher = TaskPublisher(
            self.celery, task_queues(queues), self.celery.conf.task_publish_retry_policy
        )
        self._routing_keys = {PREDICT_TASK: queues.predict, JOB_CHUNK_TASK: queues.jobs}
        self._coalescing: Coalescer | None = None
        self._max_coalesced = max_coalesced
        self._pending: dict[str, Future[PredictReply]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.reply_queue_name = ""
        self._topology_declared = False

    # -- reply consumer -------------------------------------------------
    def _connection(self) -> Connection:
        return Connection(
            self.celery.conf.broker_url,
            transport_options=transport_options(self._broker_url),
            connect_timeout=5,
            heartbeat=0,
        )

    def ensure_ready(self, first_wait_s: float = 5.0, reconnect_wait_s: float = 0.5) -> None:
        """Start the reply consumer if needed; raise BrokerUnavailableError unless it is connected.

        The first call waits for the initial connection; later calls wait only
        briefly, so during an outage requests fail fast with 503 instead of
        piling up behind reconnect attempts.
        """
        started = False
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                client = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
                self.reply_queue_name = self._queues.reply(client)
                self._ready.clear()
                self._thread = threading.Thread(
                    target=self._consume_forever, name="reply-consumer", daemon=True
                )
                self._thread.start()
                started = True
        if not self._ready.wait(first_wait_s if started else reconnect_wait_s):
            raise BrokerUnavailableError("cannot reach it to open the reply channel")

    def _reply_queue(self) -> Queue:
        # Non-durable and auto-deleted: replies matter only to this live
        # process; x-expires removes the queue if the process dies uncleanly.
        return Queue(
            self.reply_queue_name,
            durable=False,
            auto_delete=True,
            queue_arguments={"x-expires": 120_000},
        )

    def _consume_forever(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                with self._connection() as conn:
                    conn.ensure_connection(max_retries=1)
                    if not self._topology_declared:
                        declare_topology(conn, self._queues)
                        self._topology_declared = True
                    with Consumer(
                        conn,
                        queues=[self._reply_queue()],
                        callbacks=[self._on_reply],
                        no_ack=True,
                        accept=["json"],
                    ):
                        self._ready.set()
                        delay = 0.2
                        while not self._stop.is_set():
                            try:
                                conn.drain_events(timeout=1)
                            except TimeoutError:
                                continue
            except Exception as exc:  # any broker failure: mark unready, back off, reconnect
                self._ready.clear()
                logger.warning("reply consumer disconnected (%s); reconnecting in %.1fs", exc, delay)
                self._fail_pending("the broker connection was lost while waiting for the answer")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _on_reply(self, body: Any, message: Any) -> None:
        if isinstance(body, dict) and isinstance(body.get(REPLIES_KWARG), list):
            # The answers to a coalesced message, in one reply.
            for reply in body[REPLIES_KWARG]:
                self._answer(reply.get("request_id") if isinstance(reply, dict) else None, reply)
        else:
            self._answer(message.properties.get("correlation_id"), body)

    def _answer(self, request_id: str | None, body: Any) -> None:
        with self._lock:
            future = self._pending.pop(request_id, None) if request_id else None
        if future is None:
            # A redelivered request answered twice, or one whose waiter timed out.
            logger.debug("dropping reply for unknown request %s", request_id)
            return
        try:
            future.set_result(PredictReply.model_validate(body))
        except Exception as exc:
            future.set_exception(exc)

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(ApiError(503, "reply_lost", reason, headers={"Retry-After": RETRY_AFTER_S}))

    @property
    def ready(self) -> bool:
        """True when the reply consumer is connected (the broker is reachable)."""
        try:
            self.ensure_ready()
        except BrokerUnavailableError:
            return False
        return True

    # -- publishing -----------------------------------------------------
    def publish(
        self,
        task: str,
        kwargs: dict[str, Any],
        task_id: str,
        reply: bool,
        retry: bool = True,
        traced: bool = True,
        serializer: str = "json",
    ) -> None:
        """Publish one task with confirms; raise BrokerUnavailableError if it was not taken.

        ``retry=False`` gives up at the first failure: for best-effort copies
        (shadow traffic) that must not hold up the request that sends them.
        ``traced=False`` for a coalesced message, whose requests carry their
        own trace context (and have their own publish spans).
        """
        try:
            self._publisher.publish(
                task,
                kwargs,
                task_id,
                routing_key=self._routing_keys[task],
                reply_to=self.reply_queue_name if reply else "",
                retry=retry,
                trace_message=traced,
                serializer=serializer,
                persistent=task not in TRANSIENT_TASKS,
            )
        except Exception as exc:  # kombu/amqp raise many types; all mean "not accepted"
            logger.warning("publish of %s failed: %s", task, exc)
            raise BrokerUnavailableError(type(exc).__name__) from exc

    def publish_all(
        self, task: str, messages: list[tuple[dict[str, Any], str]], serializer: str = "json"
    ) -> None:
        """Publish persistent messages (``(kwargs, task_id)`` each) confirmed together (job chunks).

        If that fails (a dropped connection, a refusal), every message is published
        again one by one with :meth:`publish`'s bounded retries: one that got through
        twice is harmless (the worker stores a chunk once). BrokerUnavailableError
        if those fail too.
        """
        try:
            self._publisher.publish_all(task, messages, self._routing_keys[task], serializer)
            return
        except Exception as exc:  # kombu/amqp raise many types
            logger.warning(
                "publishing %d %s messages together failed (%s); one by one", len(messages), task, exc
            )
        for kwargs, task_id in messages:
            self.publish(task, kwargs, task_id, reply=False, serializer=serializer)

    def call(
        self,
        request: dict[str, Any],
        timeout_s: float,
        after_publish: Callable[[], None] | None = None,
    ) -> PredictReply:
        """Publish a sync predict request (a :class:`PredictRequest` dict) and wait for its reply.

        The request joins whatever other requests of this process are waiting
        to be published (:class:`Coalescer`); this returns once the worker's
        answer arrives. ``after_publish`` runs once the request is accepted,
        while the worker is already answering it (the api sends shadow copies
        there); it must not raise.
        """
        self.ensure_ready()
        request_id = request["request_id"]
        future: Future[PredictReply] = Future()
        with self._lock:
            self._pending[request_id] = future
        try:
            # A span per request, as the Celery instrumentation makes per message: each
            # request's own trace shows its publish, and the worker links to it.
            with tracer.start_as_current_span(
                f"apply_async/{PREDICT_TASK}", kind=trace.SpanKind.PRODUCER
            ) as span:
                if span.is_recording():
                    span.set_attribute("celery.action", "apply_async")
                    span.set_attribute("celery.task_name", PREDICT_TASK)
                    span.set_attribute("messaging.message.id", request_id)
                    span.set_attribute(ATTR_MESSAGING_SYSTEM, "rabbitmq")
                    span.set_attribute(ATTR_DESTINATION, self._queues.predict)
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                self._coalescer().publish({**request, "trace": carrier}, timeout_s)
        except (BrokerUnavailableError, FutureTimeout) as exc:
            with self._lock:
                self._pending.pop(request_id, None)
            if isinstance(exc, BrokerUnavailableError):
                raise
            raise BrokerUnavailableError(f"no publisher confirm within {timeout_s:g}s") from exc
        if after_publish is not None:
            after_publish()
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(request_id, None)
            raise ApiError(
                504, "timeout", f"no answer from a worker within {timeout_s:g}s (request id {request_id})"
            ) from None

    def _coalescer(self) -> Coalescer:
        with self._lock:
            if self._coalescing is None or self._coalescing.pid != os.getpid():
                self._coalescing = Coalescer(self._publish_batch, self._max_coalesced)
            return self._coalescing

    def _publish_batch(self, requests: list[dict[str, Any]]) -> None:
        """One message for the requests the coalescer gathered (raises BrokerUnavailableError)."""
        self.publish(PREDICT_TASK, {BATCH_KWARG: requests}, new_request_id(), reply=True, traced=False)

    def close(self) -> None:
        """Stop the consumer thread (tests and shutdown)."""
        self._stop.set()
