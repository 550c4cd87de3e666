"""The Celery application of the worker service.

Run it with ``celery -A inference_worker.celery_app worker``. Tracing and
model state are initialised in each pool process after fork
(``worker_process_init``), never in the parent.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, bootsteps, signals
from kombu import Connection

from inference_common.broker import celery_config, declare_topology, transport_options
from inference_common.gc_tuning import freeze_startup_objects
from inference_common.logs import install_celery_logging
from inference_common.telemetry import configure_tracing, instrument_celery, shutdown_tracing

# First of the package's modules: it puts prometheus_client in multiprocess
# mode before anything else imports it, and before the pool forks.
from . import metrics
from .config import WorkerSettings
from .deadletter import DeadLetterPoison
from .device import resolve_device
from .runtime import get_device, get_runtime, set_device

logger = logging.getLogger(__name__)

SERVICE_NAME = "worker"


def create_celery(settings: WorkerSettings) -> Celery:
    """Build the Celery app from validated settings."""
    app = Celery("inference_worker", include=["inference_worker.tasks"])
    app.conf.update(celery_config(settings.broker_url, settings.queues))
    app.conf.update(
        # Enough unacked messages in hand to fill a micro-batch per pool process.
        worker_prefetch_multiplier=max(settings.batch_max_size * 2, 4),
        task_soft_time_limit=settings.soft_time_limit_s,
        task_time_limit=settings.time_limit_s,
    )
    if settings.concurrency:
        app.conf.worker_concurrency = settings.concurrency
    app.conf.inference_settings = settings
    app.steps["worker"].add(Heartbeat)
    # Undecodable messages go to the dead-letter queue instead of being acknowledged away.
    app.steps["consumer"].add(DeadLetterPoison)
    return app


class Heartbeat(bootsteps.StartStopStep):
    """Touch the heartbeat file from the worker's own event loop.

    The timer runs in the main process's loop, so a wedged consumer stops the
    heartbeat and the liveness probe (``python -m inference_worker.probe live``)
    restarts the pod.
    """

    requires = ("celery.worker.components:Timer",)
    INTERVAL_S = 10.0

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._timer_ref: Any = None

    def start(self, worker: Any) -> None:
        """Beat now and then every few seconds."""
        _beat()
        self._timer_ref = worker.timer.call_repeatedly(self.INTERVAL_S, _beat)

    def stop(self, worker: Any) -> None:
        """Stop beating; the files go away so probes fail at once."""
        if self._timer_ref is not None:
            self._timer_ref.cancel()
        settings.heartbeat_file.unlink(missing_ok=True)
        settings.ready_file.unlink(missing_ok=True)


def _beat() -> None:
    settings.heartbeat_file.touch()


settings = WorkerSettings.from_env()
app = create_celery(settings)
# JSON lines with trace ids (inference_common.logs) in the main and the pool processes.
install_celery_logging(SERVICE_NAME)


@signals.worker_init.connect
def _on_worker_init(**_: Any) -> None:
    # The device is resolved in the parent by a subprocess probe, so the
    # parent itself never initialises CUDA; children inherit the answer.
    set_device(resolve_device(settings.device))
    # Samples of a previous run in a reused directory would be summed with ours.
    removed = metrics.wipe_stale_files()
    if removed:
        logger.info("removed %d stale metric files from %s", removed, metrics.multiproc_dir())
    with Connection(app.conf.broker_url, transport_options=transport_options(settings.broker_url)) as conn:
        declare_topology(conn, settings.queues)


def _init_process() -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    configure_tracing(SERVICE_NAME)
    instrument_celery()
    runtime = get_runtime(settings)
    SQLAlchemyInstrumentor().instrument(engine=runtime.records.engine)


@signals.worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    _init_process()
    freeze_startup_objects()


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    # Logged here: logging is not set up yet when worker_init fires.
    logger.info("WORKER_DEVICE=%s: using device %s", settings.device, get_device())
    settings.ready_file.touch()
    # Started once the pool has forked: its first processes do not inherit the listening socket.
    metrics.serve(settings.metrics_port)
    # Solo and thread pools never fork, so no worker_process_init is sent.
    pool = getattr(sender, "pool", None)
    if pool is not None and "prefork" not in type(pool).__module__:
        _init_process()
    # The main process (consumer, batching) is set up by now; prefork children froze their own.
    freeze_startup_objects()


@signals.worker_shutting_down.connect
def _on_worker_shutting_down(**_: Any) -> None:
    # Not ready any more: a draining worker takes no new traffic.
    settings.ready_file.unlink(missing_ok=True)


@signals.worker_process_shutdown.connect
def _on_worker_process_shutdown(pid: int | None = None, **_: Any) -> None:
    shutdown_tracing()
    metrics.mark_process_dead(pid or os.getpid())
