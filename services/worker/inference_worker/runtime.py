"""Per-process state of a worker: database engine, model cache, record writer.

Created lazily in the process that uses it (a prefork child), never
inherited across fork: a forked copy of a connection pool or an OpenMP
thread pool is broken in the child.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from inference_common.db import make_engine

from .config import WorkerSettings
from .models import ModelCache
from .records import RecordWriter
from .review import ReviewFlagger

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What one worker process needs to serve predictions."""

    pid: int
    settings: WorkerSettings
    device: str
    models: ModelCache
    records: RecordWriter


_runtime: Runtime | None = None
#: Resolved once in the parent (by a subprocess probe) and inherited by children.
_device: str | None = None


def set_device(device: str) -> None:
    """Record the device resolved at worker start-up."""
    global _device
    _device = device


def get_device() -> str:
    """The device this worker uses (``cpu`` until resolved)."""
    return _device or "cpu"


def get_runtime(settings: WorkerSettings) -> Runtime:
    """The runtime of the current process, created on first use after fork."""
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        device = get_device()
        engine = make_engine(settings.database_url, pool_size=2)
        _runtime = Runtime(
            pid=os.getpid(),
            settings=settings,
            device=device,
            models=ModelCache(engine, settings.model_store, device, settings.model_cache_size),
            # The audit writer retries on a dropped connection (with_db_retry), so it
            # skips the pre-ping round trip that would otherwise precede every batch's write.
            records=RecordWriter(
                make_engine(settings.database_url, pool_size=1, pre_ping=False),
                settings.store_outputs_max_rows,
                ReviewFlagger(settings.policy_cache_ttl_s, settings.review_max_rows_per_request),
            ),
        )
        logger.info("worker process %s ready (device %s)", os.getpid(), device)
    return _runtime
