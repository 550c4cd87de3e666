"""Gather the sync requests of one api process into shared messages.

Every message costs the same to publish and confirm, route through
RabbitMQ, and take apart in the worker's consumer, whether it carries one
request or thirty. Under load, many request threads of a process are
waiting to publish at the same moment: one publisher thread sends them all
in one message, and each waiting thread returns once that message is
confirmed. Nothing waits on purpose: a request that finds the publisher idle
goes out alone, at once; requests arriving while a publish is in flight
share the next one. The batching that fills a model call stays the worker's
(micro-batches of messages); this only cuts the per-message work.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger(__name__)

#: publish(requests) sends one message with all of ``requests``; it raises when the broker refuses it.
PublishFn = Callable[[list[dict[str, Any]]], None]


class Coalescer:
    """A publisher thread that sends the requests waiting for it, up to ``max_batch`` a message."""

    def __init__(self, publish: PublishFn, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.pid = os.getpid()
        self._publish = publish
        self._max_batch = max_batch
        self._waiting: queue.SimpleQueue[tuple[dict[str, Any], Future[None]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="request-coalescer", daemon=True)
        self._thread.start()

    def publish(self, request: dict[str, Any], timeout_s: float) -> None:
        """Queue ``request`` for the next message; return once the broker has confirmed that message.

        Raises what the publish raised when the broker refused the message,
        and TimeoutError when no answer came within ``timeout_s``.
        """
        accepted: Future[None] = Future()
        self._waiting.put((request, accepted))
        accepted.result(timeout=timeout_s)

    def _take_batch(self) -> list[tuple[dict[str, Any], Future[None]]]:
        batch = [self._waiting.get()]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._waiting.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            try:
                self._publish([request for request, _ in batch])
            except Exception as exc:  # handed to every waiter: each answers 503 itself
                for _, accepted in batch:
                    accepted.set_exception(exc)
            else:
                for _, accepted in batch:
                    accepted.set_result(None)
