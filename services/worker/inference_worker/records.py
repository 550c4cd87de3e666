"""Audit rows and job results, written idempotently.

Messages are acknowledged after the work (``acks_late``), so a crash between
the write and the ack redelivers a message that was already recorded. Every
write is therefore keyed (request id, job chunk) and skips rows that exist.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
from sqlalchemy import Engine, case, update

from inference_common.db import PreparedInsert, backoff, insert_ignoring_duplicates, with_db_retry
from inference_common.digests import array_digest
from inference_common.jobs import JOB_DONE_CHANNEL, encode_outputs, notify_job_ended
from inference_common.schema import (
    JOB_FAILED,
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_SUCCEEDED,
    PREDICTION_COLUMNS,
    jobs,
)

from .review import ReviewFlagger

logger = logging.getLogger(__name__)

#: SHA-256 of an array's float32 bytes: identifies inputs/outputs without storing them.
digest = array_digest


@dataclass(frozen=True)
class PredictionRow:
    """One audit row: what was asked, who asked, what was answered and how fast."""

    request_id: str
    api_key_id: int | None
    model_version_id: int
    protocol: str
    inputs: np.ndarray
    outputs: np.ndarray | None
    latency_ms: float
    predict_ms: float
    batch_size: int
    device: str
    trace_id: str
    status: str
    error: str = ""
    job_id: uuid.UUID | None = None
    #: How the api chose the version (``inference_common.schema.ROUTE_*``).
    route: str = ""
    #: For a shadow copy, the request id of the answer the client got.
    shadow_of: str = ""

    #: The audit table's columns :meth:`values` fills.
    COLUMNS: ClassVar[list[str]] = PREDICTION_COLUMNS

    def values(self, store_outputs_max_rows: int) -> dict[str, Any]:
        """Column values; outputs are stored in full only for small requests."""
        outputs = self.outputs
        keep = outputs is not None and len(self.inputs) <= store_outputs_max_rows
        return {
            "request_id": self.request_id,
            "api_key_id": self.api_key_id,
            "model_version_id": self.model_version_id,
            "job_id": self.job_id,
            "protocol": self.protocol,
            "n_rows": len(self.inputs),
            "inputs_digest": digest(self.inputs),
            "outputs": outputs.tolist() if keep and outputs is not None else None,
            "outputs_digest": digest(outputs) if outputs is not None else "",
            "latency_ms": self.latency_ms,
            "predict_ms": self.predict_ms,
            "batch_size": self.batch_size,
            "device": self.device,
            "trace_id": self.trace_id,
            "status": self.status,
            "error": self.error,
            "route": self.route,
            "shadow_of": self.shadow_of,
            "created_at": datetime.now(UTC),
        }


#: PostgreSQL: store a chunk (``{insert}``: the prepared ``job_chunks`` insert), and only if it was
#: new, advance its job; tell long-polling api processes when that ended the job. Selects whether
#: the chunk was new. (A data-modifying CTE sees the row the chunk insert returns, not the table.)
_CHUNK_AND_ADVANCE = """\
WITH chunk AS ({insert}),
advanced AS (
    UPDATE jobs SET
        chunks_done = chunks_done + 1,
        status = CASE WHEN chunks_done + 1 >= n_chunks THEN %(succeeded)s ELSE %(running)s END,
        updated_at = %(created_at)s,
        completed_at = CASE WHEN chunks_done + 1 >= n_chunks THEN %(created_at)s END
    WHERE id = %(job_id)s AND status IN (%(queued)s, %(running)s) AND EXISTS (SELECT 1 FROM chunk)
    RETURNING status
)
SELECT
    EXISTS (SELECT 1 FROM chunk),
    (SELECT pg_notify(%(channel)s, %(job_id_text)s) FROM advanced WHERE status = %(succeeded)s)"""


def _returning(insert: str) -> str:
    """``insert`` returning a row for each row it wrote (SQLAlchemy may have added its primary key)."""
    return insert if " RETURNING " in insert else f"{insert} RETURNING 1"


#: The ``job_chunks`` columns :meth:`RecordWriter.write_chunk` fills.
CHUNK_COLUMNS = ["job_id", "chunk_index", "row_offset", "n_rows", "outputs_f32", "shape", "created_at"]


class RecordWriter:
    """Writes audit rows and job chunk results through one engine.

    With a ``review`` flagger, the audit rows of sync requests are checked
    against their model's review policy and flagged rows are queued in
    ``review_items`` in the same transaction.
    """

    def __init__(
        self, engine: Engine, store_outputs_max_rows: int, review: ReviewFlagger | None = None
    ) -> None:
        self._engine = engine
        self._store_outputs_max_rows = store_outputs_max_rows
        self._review = review
        self._audit_insert = PreparedInsert(engine, "prediction_records", PredictionRow.COLUMNS)
        self._chunk_insert = PreparedInsert(engine, "job_chunks", CHUNK_COLUMNS)
        self._chunk_and_advance = (
            _CHUNK_AND_ADVANCE.format(insert=_returning(self._chunk_insert.sql))
            if engine.dialect.name == "postgresql"
            else None
        )

    @property
    def engine(self) -> Engine:
        """The engine the writes go through (instrumented for tracing)."""
        return self._engine

    def write_predictions(self, rows: Sequence[PredictionRow]) -> None:
        """Insert audit rows (and their review items) in one transaction; duplicates are skipped.

        Review items are keyed by (request id, row) like the audit rows by
        request id, so a redelivered message queues nothing twice.
        """
        if not rows:
            return
        review_statement = insert_ignoring_duplicates(self._engine, "review_items")
        values = [row.values(self._store_outputs_max_rows) for row in rows]

        def write() -> None:
            with self._engine.begin() as conn:
                self._audit_insert.execute(conn, values)
                # After the audit rows: review items reference them by request id.
                items = self._review.items(conn, rows) if self._review is not None else []
                if items:
                    conn.execute(review_statement, items)

        # The callers already have their answers, so this write is the only
        # trace of them: retry for ~15 s (well inside the soft time limit) so
        # that a database outage of a few seconds does not lose audit rows.
        with_db_retry(write, backoff(0.25, 6), "audit write")

    def write_chunk(
        self, job_id: uuid.UUID, chunk_index: int, row_offset: int, outputs: np.ndarray, record: PredictionRow
    ) -> bool:
        """Store one chunk's outputs and advance the job, atomically and once.

        Returns False when the chunk had already been stored by an earlier
        delivery of the same message.
        """
        now = datetime.now(UTC)
        chunk = self._chunk_insert.parameters(
            [
                {
                    "job_id": job_id,
                    "chunk_index": chunk_index,
                    "row_offset": row_offset,
                    "n_rows": int(outputs.shape[0]),
                    "outputs_f32": encode_outputs(outputs),
                    "shape": list(outputs.shape),
                    "created_at": now,
                }
            ]
        )[0]
        audit = [record.values(self._store_outputs_max_rows)]
        if self._chunk_and_advance is not None:
            return with_db_retry(lambda: self._write_chunk_pipelined(job_id, chunk, audit))
        # Elsewhere (SQLite, no notifications): one statement at a time, the job advanced only
        # for a new chunk.
        done = jobs.c.chunks_done + 1
        advance = (
            update(jobs)
            # A job that already failed stays failed; late chunks are still stored.
            .where(jobs.c.id == job_id, jobs.c.status.in_((JOB_QUEUED, JOB_RUNNING)))
            .values(
                chunks_done=done,
                status=case((done >= jobs.c.n_chunks, JOB_SUCCEEDED), else_=JOB_RUNNING),
                updated_at=now,
                completed_at=case((done >= jobs.c.n_chunks, now), else_=None),
            )
        )

        def write() -> bool:
            with self._engine.begin() as conn:
                # One row in one execute: rowcount is 0 when the chunk was stored by an earlier delivery.
                inserted = conn.exec_driver_sql(self._chunk_insert.sql, chunk).rowcount == 1
                if inserted:
                    conn.execute(advance)
                    self._audit_insert.execute(conn, audit)
                return inserted

        return with_db_retry(write)

    def _write_chunk_pipelined(self, job_id: uuid.UUID, chunk: dict[str, Any], audit: list[Any]) -> bool:
        """PostgreSQL: the chunk, the job's progress and its notification in one statement, sent
        with the audit row in one round trip (psycopg's pipeline mode), then the commit.

        One round trip per statement (begin, chunk, progress, audit, commit) was a fixed cost of
        every chunk. The audit row needs no condition: its request id is the chunk's, so an
        earlier delivery's row makes this insert a no-op, as it makes the chunk's.
        """
        params = {
            **chunk,
            "job_id_text": str(job_id),
            "channel": JOB_DONE_CHANNEL,
            "queued": JOB_QUEUED,
            "running": JOB_RUNNING,
            "succeeded": JOB_SUCCEEDED,
        }
        with self._engine.begin() as conn:
            driver = conn.connection.driver_connection
            with driver.pipeline():
                self._audit_insert.execute(conn, audit)
                # The driver's cursor: SQLAlchemy reads a result as soon as it executes, which
                # in pipeline mode is before the server answered.
                cursor = driver.cursor()
                cursor.execute(self._chunk_and_advance, params)
            # The pipeline is synced: one round trip for both statements.
            (inserted, _notified) = cursor.fetchone()
            return bool(inserted)

    def fail_job(self, job_id: uuid.UUID, error: str) -> None:
        """Mark a job failed with a message the client can read."""
        now = datetime.now(UTC)

        def write() -> None:
            with self._engine.begin() as conn:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status != JOB_SUCCEEDED)
                    .values(status=JOB_FAILED, error=error[:2000], updated_at=now, completed_at=now)
                )
                notify_job_ended(conn, job_id)

        with_db_retry(write)
