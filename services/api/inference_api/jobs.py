"""Async jobs: split large inputs into chunks of many rows, one message each.

Rows travel in near-equal chunks of at most ``API_JOB_CHUNK_ROWS``, as float32
bytes; the chunk messages are built by ``inference_common.jobs``, shared with
the web tier's CSV batches.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Engine, Text, cast, select, update

from inference_common.jobs import chunk_count, chunk_messages, stored_outputs
from inference_common.schema import JOB_FAILED, JOB_QUEUED, JOB_SUCCEEDED, job_chunks, jobs, model_versions
from inference_common.telemetry import current_trace_id

from .auth import Principal
from .dispatch import BrokerUnavailableError, Dispatcher
from .errors import ApiError
from .job_waits import JobWaiter, wait_until_ended
from .registry import ModelInfo


class JobService:
    """Creates jobs (record first, then chunk messages) and reads them back."""

    def __init__(
        self, engine: Engine, dispatcher: Dispatcher, chunk_rows: int, waiter: JobWaiter | None = None
    ) -> None:
        self._engine = engine
        self._dispatcher = dispatcher
        self._chunk_rows = chunk_rows
        self._waiter = waiter if waiter is not None else JobWaiter(engine, max_waiters=0)

    def submit(self, model: ModelInfo, matrix: np.ndarray, principal: Principal) -> dict[str, Any]:
        """Record the job, publish its chunks, return its public view.

        If the broker refuses a chunk, the job is marked failed and the client
        gets 503: nothing is reported accepted that could be lost.
        """
        # Refuse before recording anything when the broker is known to be down.
        self._dispatcher.ensure_ready()
        job_id = uuid.uuid4()
        n_rows = int(matrix.shape[0])
        n_chunks = chunk_count(n_rows, self._chunk_rows)
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    api_key_id=principal.key_id,
                    model_version_id=model.id,
                    status=JOB_QUEUED,
                    n_rows=n_rows,
                    n_chunks=n_chunks,
                    chunks_done=0,
                    error="",
                    trace_id=current_trace_id(),
                    created_at=now,
                    updated_at=now,
                )
            )
        messages = list(
            chunk_messages(
                job_id=job_id,
                model=model.name,
                version=model.version,
                model_version_id=model.id,
                n_features=model.n_features,
                matrix=matrix,
                chunk_rows=self._chunk_rows,
                api_key_id=principal.key_id,
            )
        )
        try:
            self._dispatcher.publish_all(
                messages[0].task,
                [(message.kwargs, message.task_id) for message in messages],
                serializer=messages[0].serializer,
            )
        except BrokerUnavailableError:
            self._mark_failed(job_id, "the broker became unavailable while the job was being enqueued")
            raise
        return {
            "id": str(job_id),
            "status": JOB_QUEUED,
            "model_name": model.name,
            "model_version": model.version,
            "rows": n_rows,
            "chunks": n_chunks,
        }

    def _mark_failed(self, job_id: uuid.UUID, error: str) -> None:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(status=JOB_FAILED, error=error, updated_at=now, completed_at=now)
            )

    def get(self, job_id_text: str, principal: Principal, wait_s: float = 0.0) -> dict[str, Any]:
        """The job's status, and its predictions once it has succeeded.

        With ``wait_s``, the answer waits until the job ends or ``wait_s`` pass (long-polling,
        :mod:`.job_waits`); it may come sooner when too many requests already wait.
        """
        try:
            job_id = uuid.UUID(job_id_text)
        except ValueError:
            raise ApiError(404, "job_not_found", f"no job '{job_id_text}'") from None
        if wait_s <= 0:
            return self._view(job_id, job_id_text, principal)
        return wait_until_ended(
            self._waiter,
            job_id,
            wait_s,
            lambda: self._view(job_id, job_id_text, principal),
            lambda view: view["status"] in (JOB_SUCCEEDED, JOB_FAILED),
        )

    def _view(self, job_id: uuid.UUID, job_id_text: str, principal: Principal) -> dict[str, Any]:
        with self._engine.connect() as conn:
            job = conn.execute(
                select(jobs, model_versions.c.name, model_versions.c.version)
                .join(model_versions, jobs.c.model_version_id == model_versions.c.id)
                .where(jobs.c.id == job_id)
            ).first()
            # A job is visible only to the key that created it; others get 404,
            # not 403, so job ids cannot be probed.
            if job is None or job.api_key_id != principal.key_id:
                raise ApiError(404, "job_not_found", f"no job '{job_id_text}'")
            view: dict[str, Any] = {
                "id": str(job.id),
                "status": job.status,
                "model_name": job.name,
                "model_version": job.version,
                "rows": job.n_rows,
                "chunks": job.n_chunks,
                "chunks_done": job.chunks_done,
                "created_at": job.created_at.isoformat(),
                "completed_at": job.completed_at.isoformat() if job.completed_at else None,
            }
            if job.error:
                view["error"] = job.error
            if job.status == JOB_SUCCEEDED:
                chunks = conn.execute(
                    select(
                        job_chunks.c.outputs_f32,
                        # Older chunks' JSON as text, parsed by orjson: the driver's json.loads
                        # took most of the time.
                        cast(job_chunks.c.outputs, Text),
                        job_chunks.c.shape,
                    )
                    .where(job_chunks.c.job_id == job_id)
                    .order_by(job_chunks.c.chunk_index)
                ).all()
                view["predictions"] = _predictions(chunks)
        return view


def _predictions(chunks: Any) -> np.ndarray:
    """Every chunk's outputs in input order, one array (serialized by orjson as nested lists)."""
    parts = [
        stored_outputs(outputs_f32, None if outputs is None else orjson.loads(outputs), shape)
        for outputs_f32, outputs, shape in chunks
    ]
    return np.concatenate(parts) if parts else np.zeros(0)
