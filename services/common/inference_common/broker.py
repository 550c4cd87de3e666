"""Celery/kombu configuration shared by the api (publisher) and the worker.

Both sides must agree on queue names, their arguments (a durable queue
declared with different arguments is refused by RabbitMQ) and serializers,
so the whole broker topology is built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kombu import Connection, Exchange, Queue

from .contract import BINARY_SERIALIZER, JOB_CHUNK_TASK, PREDICT_TASK, Queues

FILESYSTEM_SCHEME = "filesystem://"


def is_filesystem(url: str) -> bool:
    """True for the embedded, file-based transport used by ``make demo``."""
    return url.startswith(FILESYSTEM_SCHEME)


def transport_options(url: str) -> dict[str, Any]:
    """Transport options for ``url``.

    On AMQP, publisher confirms make ``send_task`` return only once RabbitMQ
    has taken responsibility for the message, so the api never answers 202
    for a message the broker did not store. The filesystem transport keeps
    its messages in a folder named by the URL path.
    """
    if is_filesystem(url):
        folder = Path(url[len(FILESYSTEM_SCHEME) :] or "var/broker")
        folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            # Exchange bindings; kombu's default is ./control in the working directory.
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.02,
        }
    return {"confirm_publish": True}


def connection_url(url: str) -> str:
    """The URL kombu connects to (the filesystem path moves into options)."""
    return "filesystem://" if is_filesystem(url) else url


def task_queues(queues: Queues) -> list[Queue]:
    """The durable work queues; rejected messages dead-letter to ``queues.dead_letter``."""
    exchange = Exchange(queues.prefix, type="direct", durable=True)
    arguments = {
        "x-dead-letter-exchange": queues.dead_letter_exchange,
        "x-dead-letter-routing-key": queues.dead_letter,
    }
    return [
        Queue(queues.predict, exchange, routing_key=queues.predict, durable=True, queue_arguments=arguments),
        Queue(queues.jobs, exchange, routing_key=queues.jobs, durable=True, queue_arguments=arguments),
    ]


def dead_letter_queue(queues: Queues) -> Queue:
    """The queue where poison and exhausted messages end up for inspection."""
    exchange = Exchange(queues.dead_letter_exchange, type="direct", durable=True)
    return Queue(queues.dead_letter, exchange, routing_key=queues.dead_letter, durable=True)


def declare_topology(connection: Connection, queues: Queues) -> None:
    """Declare work queues, the dead-letter exchange and queue (idempotent)."""
    channel = connection.default_channel
    for queue in [*task_queues(queues), dead_letter_queue(queues)]:
        queue(channel).declare()


def celery_config(url: str, queues: Queues) -> dict[str, Any]:
    """Celery settings (``CELERY_`` namespace-free) shared by both sides."""
    filesystem = is_filesystem(url)
    return {
        "broker_url": connection_url(url),
        "broker_transport_options": transport_options(url),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        "broker_heartbeat": 0 if filesystem else 30,
        "task_serializer": "json",
        # msgpack: job chunks carry their rows as raw bytes (contract.BINARY_SERIALIZER).
        "accept_content": ["json", BINARY_SERIALIZER],
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_queues": task_queues(queues),
        "task_default_queue": queues.predict,
        "task_routes": {
            PREDICT_TASK: {"queue": queues.predict, "routing_key": queues.predict},
            JOB_CHUNK_TASK: {"queue": queues.jobs, "routing_key": queues.jobs},
        },
        "task_default_delivery_mode": "persistent",
        # Ack after the work is done; requeue if the worker process dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Bounded: a publish either succeeds quickly or the api answers 503.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        # Remote control needs fanout exchanges the file transport lacks.
        "worker_enable_remote_control": not filesystem,
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }
