"""Async jobs: how a job's rows become chunk messages, and how chunk outputs are stored and read.

The api (``POST /v1/models/{name}/jobs``) and the web tier (CSV batches) both
publish jobs; they share this module so that the worker always receives the
same message shape and task ids, whoever created the job. Per-message cost
(about 1 ms to publish, 150 us to handle) dwarfs per-row model time (about
2 us), so rows travel in chunks of many rows, as float32 bytes rather than JSON
numbers: raw in a msgpack message (``JobChunk.rows_f32``), the default, or
base64 in a JSON one (``rows_b64``).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection

from .contract import BINARY_SERIALIZER, JOB_CHUNK_TASK, JobChunk


@dataclass(frozen=True)
class ChunkMessage:
    """One chunk ready to publish: ``send_task(task, kwargs=kwargs, task_id=task_id, serializer=...)``."""

    task: str
    task_id: str
    kwargs: dict[str, Any]
    #: ``json``, or :data:`BINARY_SERIALIZER` when the kwargs hold bytes (``rows_f32``).
    serializer: str = "json"


def chunk_count(n_rows: int, chunk_rows: int) -> int:
    """Number of chunks ``n_rows`` rows take at ``chunk_rows`` rows per chunk."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return -(-n_rows // chunk_rows)


def chunk_bounds(n_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each chunk: :func:`chunk_count` chunks of near-equal size, in row order.

    Equal shares rather than full chunks and a remainder: 10,000 rows at up
    to 8,192 a chunk become two chunks of 5,000, which two pool processes
    finish in half the time of one chunk of 8,192 (the job's last chunk sets
    when it is done).
    """
    count = chunk_count(n_rows, chunk_rows)
    edges = [index * n_rows // count for index in range(count + 1)]
    return list(itertools.pairwise(edges))


def chunk_task_id(job_id: uuid.UUID, index: int) -> str:
    """The Celery task id of chunk ``index``: stable, so a re-publish is recognisable."""
    return f"{job_id.hex}-{index}"


def chunk_messages(
    *,
    job_id: uuid.UUID,
    model: str,
    version: str,
    model_version_id: int,
    n_features: int,
    matrix: np.ndarray,
    chunk_rows: int,
    api_key_id: int | None = None,
    enqueued_at: float | None = None,
    binary: bool = True,
) -> Iterator[ChunkMessage]:
    """Yield the :data:`JOB_CHUNK_TASK` messages of a job, in row order.

    Each payload is validated by :class:`JobChunk` here (:meth:`JobChunk.of_rows`),
    so a publisher can never send a chunk the worker would refuse as malformed.
    ``binary`` (the default) sends the rows as raw bytes in a msgpack message;
    ``binary=False`` as base64 in a JSON one (readable with any JSON tool).
    """
    serializer = BINARY_SERIALIZER if binary else "json"
    n_rows = int(matrix.shape[0])
    sent_at = time.time() if enqueued_at is None else enqueued_at
    for index, (start, stop) in enumerate(chunk_bounds(n_rows, chunk_rows)):
        chunk = JobChunk.of_rows(
            matrix[start:stop],
            binary=binary,
            job_id=job_id,
            chunk_index=index,
            row_offset=start,
            model=model,
            version=version,
            model_version_id=model_version_id,
            n_features=n_features,
            api_key_id=api_key_id,
            enqueued_at=sent_at,
        )
        task_id = chunk_task_id(job_id, index)
        yield ChunkMessage(JOB_CHUNK_TASK, task_id, {"chunk": chunk.payload()}, serializer)


#: PostgreSQL notification channel on which the transaction that ends a job (succeeded or failed)
#: sends the job's id: api processes wake the requests long-polling for it (``?wait=``).
JOB_DONE_CHANNEL = "inference_job_ended"


def notify_job_ended(conn: Connection, job_id: uuid.UUID) -> None:
    """Tell long-polling api processes that ``job_id`` ended, when ``conn``'s transaction commits.

    A no-op on databases without notifications (SQLite): waiting requests poll there.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_notify(%s, %s)", (JOB_DONE_CHANNEL, str(job_id)))


#: How a chunk's outputs are stored (``job_chunks.outputs_f32``): little-endian float32, row-major.
#: Model outputs are float32, so nothing is lost; JSON numbers cost PostgreSQL a numeric parse each
#: (most of a chunk's database write) and the reader a parse back.
OUTPUTS_DTYPE = np.dtype("<f4")


def encode_outputs(outputs: np.ndarray) -> bytes:
    """A chunk's outputs as stored in ``job_chunks.outputs_f32``."""
    return np.ascontiguousarray(outputs, dtype=OUTPUTS_DTYPE).tobytes()


def stored_outputs(
    outputs_f32: bytes | memoryview | None, outputs: Sequence[Any] | None, shape: Sequence[int]
) -> np.ndarray:
    """One stored chunk's outputs as float64 in their shape (``[rows]`` or ``[rows, classes]``).

    From ``outputs_f32``, or, for chunks stored before that column existed, from the
    JSON ``outputs``. As float64, they print as the float32 values' exact digits
    (the digits the sync path answers with).
    """
    if outputs_f32 is not None:
        flat = np.frombuffer(outputs_f32, dtype=OUTPUTS_DTYPE).astype(np.float64)
    elif outputs is not None:
        flat = np.asarray(outputs, dtype=np.float64)
    else:
        raise ValueError("a stored chunk has neither outputs_f32 nor outputs")
    return flat.reshape(list(shape))
