"""CSV batches from the web: validate the file, record the job, publish its chunks, read results.

A batch is an ordinary job (the table the api's async jobs use): the chunk
messages come from ``inference_common.jobs.chunk_messages``, exactly as the
api builds them, and the inference workers process them the same way. Only
the job's origin differs: ``created_by`` and ``input_name`` instead of an API key.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import IO

import numpy as np
from celery import Celery
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.publishing import publish
from inference_common.jobs import chunk_count, chunk_messages
from inference_common.schema import STAGE_PRODUCTION
from inference_common.settings import env_int
from inference_common.telemetry import current_trace_id
from jobs.csvdata import CsvError, NumericTable, read_numeric
from jobs.models import Job, JobChunk, JobStatus
from registry.models import ModelVersion

logger = logging.getLogger(__name__)


class BatchError(ValueError):
    """A batch request that cannot be accepted (unknown model, bad file)."""


def chunk_rows_setting() -> int:
    """Rows per chunk message of a web batch (``WEB_JOB_CHUNK_ROWS``; the api has ``API_JOB_CHUNK_ROWS``)."""
    return env_int("WEB_JOB_CHUNK_ROWS", 16384, minimum=1)


def max_rows_setting() -> int:
    """Most rows one uploaded batch may have (``WEB_BATCH_MAX_ROWS``)."""
    return env_int("WEB_BATCH_MAX_ROWS", 1_000_000, minimum=1)


def resolve_model(name: str, version: str = "") -> ModelVersion:
    """The named version of ``name``, or its production version when no version is given."""
    versions = ModelVersion.objects.filter(name=name)
    if version:
        found = versions.filter(version=version).first()
        if found is None:
            raise BatchError(f"model {name!r} has no version {version!r}")
        return found
    found = versions.filter(stage=STAGE_PRODUCTION).first()
    if found is None:
        raise BatchError(f"model {name!r} has no production version; choose a version")
    return found


def read_batch(upload: IO[bytes], model_version: ModelVersion) -> NumericTable:
    """The model's feature columns of ``upload``, in the model's order (plus ``id`` when present).

    Every feature cell must be a finite number: a batch never sends a row the
    model would answer with a silent guess.
    """
    try:
        return read_numeric(
            upload, list(model_version.feature_names), keep_ids=True, max_rows=max_rows_setting()
        )
    except CsvError as exc:
        raise BatchError(str(exc)) from None


def ids_path(job_id: uuid.UUID) -> Path:
    """Where the ``id`` column of a batch's input is kept for its results file."""
    return Path(settings.MEDIA_ROOT) / "batches" / f"{job_id}.ids.json"


def submit_batch(
    *,
    model_version: ModelVersion,
    table: NumericTable,
    input_name: str,
    created_by: str,
    chunk_rows: int | None = None,
) -> Job:
    """Record a queued job for ``table`` and publish its chunks once the row is committed.

    The worker looks the job up when a chunk arrives, so nothing is published
    before the commit. If the broker refuses a chunk the job is marked failed
    with the reason (see :func:`publish_chunks`).
    """
    rows = chunk_rows or chunk_rows_setting()
    matrix = table.matrix.astype(np.float32)
    n_rows = int(matrix.shape[0])
    job_id = uuid.uuid4()
    if table.ids is not None:
        path = ids_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table.ids), encoding="utf-8")
    with transaction.atomic():
        job = Job.objects.create(
            id=job_id,
            api_key=None,
            model_version=model_version,
            status=JobStatus.QUEUED,
            n_rows=n_rows,
            n_chunks=chunk_count(n_rows, rows),
            chunks_done=0,
            trace_id=current_trace_id(),
            input_name=input_name[:255],
            created_by=created_by,
        )
        transaction.on_commit(partial(publish_chunks, job.id, model_version, matrix, rows))
    return job


def publish_chunks(
    job_id: uuid.UUID,
    model_version: ModelVersion,
    matrix: np.ndarray,
    chunk_rows: int,
    *,
    app: Celery | None = None,
) -> bool:
    """Publish every chunk of a job to the inference workers; mark the job failed if the broker refuses.

    Returns True when all chunks were accepted. With publisher confirms on,
    an accepted chunk is stored by RabbitMQ, so a job is never left waiting
    for a chunk that was silently dropped.
    """
    messages = chunk_messages(
        job_id=job_id,
        model=model_version.name,
        version=model_version.version,
        model_version_id=model_version.pk,
        n_features=model_version.n_features,
        matrix=matrix,
        chunk_rows=chunk_rows,
    )

    def send(celery: Celery) -> None:
        for message in messages:
            celery.send_task(
                message.task,
                kwargs=message.kwargs,
                task_id=message.task_id,
                serializer=message.serializer,
                retry=True,
            )

    refusal = publish(send, app=app)
    if not refusal:
        return True
    logger.warning("publishing batch %s failed: %s", job_id, refusal)
    now = timezone.now()
    Job.objects.filter(pk=job_id).exclude(status=JobStatus.SUCCEEDED).update(
        status=JobStatus.FAILED,
        error=f"{refusal}; the batch was not queued, submit it again later",
        updated_at=now,
        completed_at=now,
    )
    return False


def output_columns(model_version: ModelVersion, shape: list[int] | None = None) -> list[str]:
    """Result columns: ``prediction`` for one output per row, ``p_<class>`` for class probabilities."""
    width = shape[1] if shape and len(shape) > 1 else model_version.n_outputs
    if width <= 1:
        return ["prediction"]
    return [f"p_{index}" for index in range(width)]


def _cell(value: float) -> str:
    # repr keeps every digit of the stored double: results round-trip exactly.
    return repr(float(value))


def results_lines(job: Job) -> Iterator[str]:
    """The results of a succeeded job as CSV lines: ``id`` (or 1-based ``row``), then the outputs.

    Chunks are read one at a time in row order, so a large result streams
    without being held in memory.
    """
    ids: list[str] | None = None
    path = ids_path(job.id)
    if path.is_file():
        ids = json.loads(path.read_text(encoding="utf-8"))
    chunks = JobChunk.objects.filter(job=job).order_by("chunk_index")
    first = chunks.values_list("shape", flat=True).first()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(["id" if ids is not None else "row", *output_columns(job.model_version, first)])
    yield flush()
    for chunk in chunks.iterator(chunk_size=20):
        for offset, row in enumerate(chunk.values):
            index = chunk.row_offset + offset
            key = ids[index] if ids is not None and index < len(ids) else str(index + 1)
            values = row if isinstance(row, list) else [row]
            writer.writerow([key, *(_cell(value) for value in values)])
        yield flush()
