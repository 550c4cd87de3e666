"""Keep the objects a service creates at start-up out of the garbage collector's full passes.

A long-running service allocates most of its long-lived objects while starting (modules, the
Flask or Celery app, SQLAlchemy metadata, the OpenTelemetry SDK, pydantic models). Every full
(generation 2) collection walks all of them again: 40-110 ms per pass in the api's and the
worker's processes (measured with ``gc.callbacks``). Such passes are rare under a steady load,
but each one stalls every request the process holds: the tail of the latency distribution.
``gc.freeze()`` moves them to a permanent generation the collector skips; objects created later
are collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect what start-up left behind, then exempt every surviving object from later passes."""
    gc.collect()
    gc.freeze()
