"""Publishing sync answers to the api process that waits for them.

Replies go out on a connection of their own, without publisher confirms:
a reply is transient (delivery mode 1, to an auto-deleted queue), so a
confirm proves little — RabbitMQ confirms a message to a queue that has
just gone, and a reply lost with the broker shows up as the api's 504 either
way — while waiting for one per reply cost a broker round trip for every
request of a batch. The work message itself is still acknowledged only after
the batch is done (``acks_late``), so nothing accepted is lost.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import orjson
from kombu import Connection, Producer

from inference_common.contract import REPLIES_KWARG, PredictReply, reply_body

#: Reconnect and resend a few times on a dropped connection, then give up (the api times out: 504).
RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class ReplyPublisher:
    """One unconfirmed producer per process (made after fork), shared by its threads under a lock."""

    def __init__(self, broker_url: str, transport_options: dict[str, Any]) -> None:
        self._url = broker_url
        self._options = {k: v for k, v in transport_options.items() if k != "confirm_publish"}
        self._lock = threading.Lock()
        self._pid = 0
        self._connection: Connection | None = None
        self._producer: Producer | None = None

    def _ensure_producer(self) -> Producer:
        if self._producer is None or self._pid != os.getpid():
            # A producer inherited through fork shares its socket with the parent: never reuse it.
            self._pid = os.getpid()
            self._connection = Connection(self._url, transport_options=self._options, connect_timeout=5)
            self._producer = Producer(self._connection, auto_declare=False)
        return self._producer

    def publish(self, reply_to: str | None, correlation_id: str, reply: PredictReply) -> None:
        """Send ``reply`` to ``reply_to`` (no-op without one: shadow copies and async callers)."""
        if reply_to:
            self._send(reply_to, correlation_id, orjson.dumps(reply_body(reply)))

    def publish_many(self, reply_to: str, replies: list[PredictReply]) -> None:
        """Send the answers to the requests of coalesced messages in one message; each names its request."""
        if replies:
            body = orjson.dumps({REPLIES_KWARG: [reply_body(reply) for reply in replies]})
            self._send(reply_to, replies[0].request_id, body)

    def _send(self, reply_to: str, correlation_id: str, body: bytes) -> None:
        with self._lock:
            producer = self._ensure_producer()
            producer.publish(
                body,
                exchange="",
                routing_key=reply_to,
                correlation_id=correlation_id,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=1,
                retry=True,
                retry_policy=RETRY_POLICY,
            )

    def close(self) -> None:
        """Release the connection (tests and shutdown)."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.release()
            self._connection = self._producer = None
