"""Audit rows of cache hits, written off the request thread in batches.

A cache hit never reaches a worker, so the api writes its audit row itself.
A database round trip per hit would cost more than the hit, so rows go to a
bounded buffer that one background thread drains in multi-row inserts. No
row is dropped quietly: when the buffer is full the request thread writes
its row itself, rows the database refuses after retries are logged and
counted, and the buffer is flushed when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from inference_common.db import PreparedInsert, backoff, with_db_retry
from inference_common.digests import array_digest
from inference_common.schema import PREDICTION_COLUMNS

from .metrics import CACHE_AUDIT_ROWS

logger = logging.getLogger(__name__)

#: Columns of a hit's audit row: a prediction's, marked as a hit.
COLUMNS = [*PREDICTION_COLUMNS, "cache_hit"]


@dataclass(frozen=True)
class HitRecord:
    """What the api knows about one cache hit; turned into a row by the writer thread."""

    request_id: str
    api_key_id: int | None
    model_version_id: int
    protocol: str
    route: str
    #: SHA-256 of the float32 inputs (the same digest the worker stores).
    inputs_digest: str
    n_rows: int
    outputs: np.ndarray
    #: Lookup to answer, in milliseconds.
    latency_ms: float
    #: The device that computed the cached answer.
    device: str
    trace_id: str
    created_at: datetime

    def values(self, outputs_max_rows: int) -> dict[str, Any]:
        """Column values; outputs are stored in full only for small requests, as the worker does."""
        return {
            "request_id": self.request_id,
            "api_key_id": self.api_key_id,
            "model_version_id": self.model_version_id,
            "job_id": None,
            "protocol": self.protocol,
            "n_rows": self.n_rows,
            "inputs_digest": self.inputs_digest,
            "outputs": self.outputs.tolist() if self.n_rows <= outputs_max_rows else None,
            "outputs_digest": array_digest(self.outputs),
            "latency_ms": self.latency_ms,
            # Nothing was predicted or batched for this request.
            "predict_ms": 0.0,
            "batch_size": 0,
            "device": self.device,
            "trace_id": self.trace_id,
            "status": "ok",
            "error": "",
            "route": self.route,
            "shadow_of": "",
            "created_at": self.created_at,
            "cache_hit": True,
        }


def new_hit_record(**fields: Any) -> HitRecord:
    """A HitRecord stamped with the current time."""
    return HitRecord(created_at=datetime.now(UTC), **fields)


class _Flush:
    """A marker in the buffer: set once every row queued before it is written."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class HitAuditWriter:
    """Buffers hit rows and writes them from one thread per process, ``batch_rows`` at a time."""

    def __init__(
        self,
        engine: Engine,
        *,
        buffer_rows: int,
        outputs_max_rows: int,
        batch_rows: int = 500,
        retry_delays_s: tuple[float, ...] = backoff(0.25, 5),
    ) -> None:
        self._engine = engine
        self._insert = PreparedInsert(engine, "prediction_records", COLUMNS)
        self._outputs_max_rows = outputs_max_rows
        self._batch_rows = batch_rows
        self._retry_delays_s = retry_delays_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=buffer_rows)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, record: HitRecord) -> None:
        """Queue one hit's row; write it on this thread if the buffer is full."""
        self._ensure_started()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            # The database is behind: this request pays for its own row rather than losing it.
            self._write([record], self._retry_delays_s[:1], "sync")

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every row submitted so far is written (or has failed); False on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout_s)
        except queue.Full:
            return False
        return marker.done.wait(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is buffered and stop the thread (process exit, tests)."""
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            logger.error(
                "cache hit audit buffer still full at shutdown; %d rows unwritten", self._queue.qsize()
            )
            return
        thread.join(timeout_s)

    def _ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="cache-hit-audit", daemon=True)
            self._thread.start()
            # gunicorn workers exit through sys.exit, which runs atexit handlers.
            atexit.register(self.close)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[HitRecord] = []
            markers: list[_Flush] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= self._batch_rows:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch, self._retry_delays_s, "background")
            for marker in markers:
                marker.done.set()
            if stop:
                return

    def _write(self, records: list[HitRecord], delays: tuple[float, ...], outcome: str) -> None:
        try:
            rows = [record.values(self._outputs_max_rows) for record in records]
        except Exception:  # a bad record must not kill the writer thread
            logger.exception("could not build %d cache hit audit rows", len(records))
            CACHE_AUDIT_ROWS.labels("failed").inc(len(records))
            return
        attempts = 0

        def write() -> None:
            nonlocal attempts
            attempts += 1
            with self._engine.begin() as conn:
                self._insert.execute(conn, rows)

        try:
            # Retried only while the database is unreachable; a refused row fails at once.
            with_db_retry(write, delays, "cache hit audit write")
        except SQLAlchemyError as exc:
            logger.error(
                "lost %d cache hit audit rows after %d attempts (first request id %s): %s",
                len(rows),
                attempts,
                rows[0]["request_id"],
                exc,
            )
            CACHE_AUDIT_ROWS.labels("failed").inc(len(rows))
        else:
            CACHE_AUDIT_ROWS.labels(outcome).inc(len(rows))
