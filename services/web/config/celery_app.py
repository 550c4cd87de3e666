"""The Celery application of the web tier.

The web process only publishes with it: training runs (``training.tasks``) to
the durable ``<prefix>.training`` queue, and the chunk messages of CSV batches
to ``<prefix>.jobs``, which the inference workers consume. The ``trainer``
process consumes the training queue, one run at a time::

    cd services/web && celery -A config.celery_app worker --queues inference.training --concurrency 1

The broker topology and serializers come from ``inference_common.broker``, so
the web, the api and the workers declare the same queues with the same
arguments (RabbitMQ refuses a durable queue redeclared differently).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals
from kombu import Exchange, Queue

from inference_common.broker import celery_config, task_queues
from inference_common.contract import Queues
from inference_common.logs import install_celery_logging
from inference_common.settings import broker_url, env_int, env_str
from inference_common.telemetry import configure_tracing, instrument_celery, shutdown_tracing

#: Name of the training task; the trainer consumes it from ``Queues.training``.
TRAIN_TASK = "training.train_model"

# Before Celery() so its Django fix-up installs: tasks then get delay_on_commit
# and each task closes stale database connections.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def training_queue(queues: Queues) -> Queue:
    """The durable training queue, dead-lettering like the work queues."""
    exchange = Exchange(queues.prefix, type="direct", durable=True)
    arguments = {
        "x-dead-letter-exchange": queues.dead_letter_exchange,
        "x-dead-letter-routing-key": queues.dead_letter,
    }
    return Queue(
        queues.training, exchange, routing_key=queues.training, durable=True, queue_arguments=arguments
    )


def create_celery(url: str | None = None, prefix: str | None = None) -> Celery:
    """Build the web's Celery app; ``BROKER_URL`` and ``BROKER_QUEUE_PREFIX`` unless given (tests)."""
    queues = Queues(prefix or env_str("BROKER_QUEUE_PREFIX", "inference"))
    url = url or broker_url()
    app = Celery("web", set_as_current=url is None)
    config = celery_config(url, queues)
    config["task_queues"] = [*task_queues(queues), training_queue(queues)]
    config["task_routes"] = {
        **config["task_routes"],
        TRAIN_TASK: {"queue": queues.training, "routing_key": queues.training},
    }
    soft_limit = env_int("TRAINER_SOFT_TIME_LIMIT_S", 3600, minimum=1)
    config.update(
        # Training is long and CPU-bound: one run per process, none reserved
        # ahead, so a second trainer replica picks up the next run at once.
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_soft_time_limit=soft_limit,
        # The hard limit leaves time to record the failure after the soft one.
        task_time_limit=soft_limit + env_int("TRAINER_HARD_TIME_LIMIT_GRACE_S", 60, minimum=1),
    )
    app.conf.update(config)
    app.autodiscover_tasks(["training"])
    return app


app = create_celery()
# Only takes effect in a worker (the trainer): JSON lines like every tier, not Celery's own format.
install_celery_logging("trainer")


@signals.worker_process_init.connect
def _trace_training_runs(**_: Any) -> None:
    """Start tracing in the trainer's pool process, after the fork (never in the parent)."""
    configure_tracing("trainer")
    instrument_celery()


@signals.worker_process_shutdown.connect
def _flush_traces(**_: Any) -> None:
    """Export what the pool process still holds before it exits."""
    shutdown_tracing()
