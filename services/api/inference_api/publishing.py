"""Publish Celery task messages straight through kombu, without ``send_task``.

``Celery.send_task`` builds the message through signals, routing lookups and
``saferepr`` of the arguments: in a profile of the api under load it took
about a third of the process's CPU, more than the HTTP handling. The sync
predict path publishes one known task to one known queue, so the message is
built here in Celery's task protocol v2 (the worker cannot tell the
difference: a test compares the headers with Celery's own) and published on
a pooled producer with the same confirms and bounded retries.

The trace context goes into the message headers inside a PRODUCER span named
and attributed as the Celery instrumentation names its publish spans, so
traces and dashboards look the same whichever path sent the message.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgpack
import orjson
from amqp import spec
from amqp.exceptions import MessageNacked
from celery import Celery
from kombu import Queue
from opentelemetry import propagate, trace

from inference_common.telemetry import ATTR_DESTINATION, ATTR_MESSAGING_SYSTEM

tracer = trace.get_tracer(__name__)

#: Celery's (empty) workflow options, the third element of a protocol v2 body.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def task_headers(task: str, task_id: str, origin: str) -> dict[str, Any]:
    """Celery task protocol v2 headers of a first-attempt task with no eta, expiry or workflow."""
    return {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "()",
        # Celery puts saferepr(kwargs) here, only for logs and monitors; the id says enough.
        "kwargsrepr": f"{{request {task_id}}}",
        "origin": origin,
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }


#: Content type and encoding of a body per serializer (kombu's names, which the worker decodes by).
_CONTENT = {"json": ("application/json", "utf-8"), "msgpack": ("application/x-msgpack", "binary")}


def task_body(kwargs: dict[str, Any], serializer: str = "json") -> bytes:
    """Protocol v2 body: (args, kwargs, embed) as JSON, or as msgpack (bytes stay bytes)."""
    if serializer == "msgpack":
        return msgpack.packb([[], kwargs, _EMBED], use_bin_type=True)
    if serializer != "json":
        raise ValueError(f"unknown serializer {serializer!r}")
    return orjson.dumps([[], kwargs, _EMBED], option=orjson.OPT_SERIALIZE_NUMPY)


class TaskPublisher:
    """Publishes task messages to the work queues on the Celery app's producer pool."""

    def __init__(self, celery: Celery, queues: list[Queue], retry_policy: dict[str, Any]) -> None:
        self._celery = celery
        # Declared once per pooled connection (kombu remembers): a virtual
        # transport (the demo's file broker) routes only to bindings it has seen.
        self._queues = {queue.routing_key: queue for queue in queues}
        self._retry_policy = retry_policy
        self._origin = f"{os.getpid()}@{socket.gethostname()}"

    def publish(
        self,
        task: str,
        kwargs: dict[str, Any],
        task_id: str,
        routing_key: str,
        reply_to: str,
        retry: bool,
        trace_message: bool = True,
        serializer: str = "json",
        persistent: bool = True,
    ) -> None:
        """Publish one task message with confirms; raise whatever kombu raises when it is refused.

        ``trace_message=False`` sends it without a publish span or trace headers (its
        payload carries the trace context of each request it holds). ``serializer``
        is ``json`` or ``msgpack`` (for kwargs that hold bytes). ``persistent=False``
        sends a transient message: confirmed once routed, not once written to disk.
        """
        headers = task_headers(task, task_id, self._origin)
        body = task_body(kwargs, serializer)
        options = {
            "content_type": _CONTENT[serializer][0],
            "content_encoding": _CONTENT[serializer][1],
            "delivery_mode": 2 if persistent else 1,
        }
        if not trace_message:
            self._send(body, headers, task_id, routing_key, reply_to, retry, options)
            return
        with _publish_span(task, task_id, routing_key):
            propagate.inject(headers)
            self._send(body, headers, task_id, routing_key, reply_to, retry, options)

    def publish_all(
        self,
        task: str,
        messages: Sequence[tuple[dict[str, Any], str]],
        routing_key: str,
        serializer: str = "json",
        confirm_timeout_s: float = 30.0,
    ) -> None:
        """Publish persistent task messages (``(kwargs, task_id)`` each) and wait for all confirms at once.

        RabbitMQ confirms a persistent message once it is on disk: one by one, each
        publish waits for its own write (13 job chunks of 3 MB: about 200 ms), while
        confirms waited for together let the broker write them in one go (about
        100 ms). On a channel of its own, so that the delivery tags it counts are its
        messages'. Raises whatever py-amqp raises (a refused message: ``MessageNacked``);
        a transport other than RabbitMQ's (the demo's file broker) publishes one by one.
        """
        with self._celery.producer_pool.acquire(block=True) as producer:
            if producer.connection.transport.driver_type == "amqp":
                queue = self._queues[routing_key]
                producer.maybe_declare(queue)
                channel = producer.channel.connection.channel()
                try:
                    _publish_confirmed_together(
                        channel,
                        (
                            self._message(channel, task, kwargs, task_id, routing_key, serializer)
                            for kwargs, task_id in messages
                        ),
                        queue.exchange.name,
                        routing_key,
                        time.monotonic() + confirm_timeout_s,
                    )
                finally:
                    with contextlib.suppress(Exception):  # a broken connection: keep the first error
                        channel.close()
                return
        # Outside the pooled producer: publish() takes one of its own.
        for kwargs, task_id in messages:
            self.publish(task, kwargs, task_id, routing_key, "", True, serializer=serializer)

    def _message(
        self, channel: Any, task: str, kwargs: dict[str, Any], task_id: str, routing_key: str, serializer: str
    ) -> Any:
        """A persistent task message ready for ``basic_publish``, with its publish span's trace context."""
        headers = task_headers(task, task_id, self._origin)
        with _publish_span(task, task_id, routing_key):
            propagate.inject(headers)
        return channel.prepare_message(
            task_body(kwargs, serializer),
            0,
            _CONTENT[serializer][0],
            _CONTENT[serializer][1],
            headers,
            {"delivery_mode": 2, "correlation_id": task_id},
        )

    def _send(
        self,
        body: bytes,
        headers: dict[str, Any],
        task_id: str,
        routing_key: str,
        reply_to: str,
        retry: bool,
        options: dict[str, Any],
    ) -> None:
        with self._celery.producer_pool.acquire(block=True) as producer:
            producer.publish(
                body,
                exchange=self._queues[routing_key].exchange,
                routing_key=routing_key,
                declare=[self._queues[routing_key]],
                headers=headers,
                correlation_id=task_id,
                reply_to=reply_to,
                retry=retry,
                retry_policy=self._retry_policy,
                **options,
            )


@contextlib.contextmanager
def _publish_span(task: str, task_id: str, routing_key: str) -> Iterator[None]:
    """A PRODUCER span named and attributed as the Celery instrumentation names its publish spans."""
    with tracer.start_as_current_span(f"apply_async/{task}", kind=trace.SpanKind.PRODUCER) as span:
        if span.is_recording():
            span.set_attribute("celery.action", "apply_async")
            span.set_attribute("celery.task_name", task)
            span.set_attribute("messaging.message.id", task_id)
            span.set_attribute(ATTR_MESSAGING_SYSTEM, "rabbitmq")
            span.set_attribute(ATTR_DESTINATION, routing_key)
        yield


def _publish_confirmed_together(
    channel: Any, messages: Iterable[Any], exchange: str, routing_key: str, deadline: float
) -> None:
    """Publish on a fresh py-amqp channel in confirm mode, then wait until RabbitMQ confirmed them all.

    ``messages`` may be a generator: each message goes out as soon as it is built, so RabbitMQ
    delivers the first chunk of a job to a worker while the next ones are still being encoded.
    Delivery tags count from 1 on a channel from its ``confirm_select``; an ack with ``multiple``
    confirms every tag up to its own.
    """
    pending: set[int] = set()
    refused: list[int] = []

    def on_ack(tag: int, multiple: bool) -> None:
        pending.difference_update({t for t in pending if t <= tag} if multiple else {tag})

    def on_nack(tag: int, multiple: bool) -> None:
        refused.append(tag)
        on_ack(tag, multiple)

    channel.events["basic_ack"].add(on_ack)
    channel.events["basic_nack"].add(on_nack)
    channel.confirm_select()
    sent = 0
    for message in messages:
        sent += 1
        # Before the publish: an ack can only come for a tag already counted as pending.
        pending.add(sent)
        # The channel's own publish, not the connection-wide confirming one (it waits per message).
        channel._basic_publish(message, exchange=exchange, routing_key=routing_key)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"RabbitMQ confirmed {sent - len(pending)} of {sent} messages in time")
        channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=remaining)
    if refused:
        raise MessageNacked(f"RabbitMQ refused {len(refused)} of {sent} messages")
