"""The worker's job chunk writes on PostgreSQL (one statement and one round trip, pipelined)."""

from __future__ import annotations

import uuid

import numpy as np
import psycopg
import pytest

from inference_common.db import make_engine
from inference_common.jobs import JOB_DONE_CHANNEL, stored_outputs
from inference_worker.records import PredictionRow, RecordWriter


def _record(job_id: uuid.UUID, index: int, version_id: int, outputs: np.ndarray) -> PredictionRow:
    return PredictionRow(
        request_id=f"{job_id.hex}:{index}",
        api_key_id=None,
        model_version_id=version_id,
        protocol="job",
        inputs=np.zeros((len(outputs), 3), dtype=np.float32),
        outputs=outputs,
        latency_ms=1.0,
        predict_ms=0.1,
        batch_size=1,
        device="cpu",
        trace_id="",
        status="ok",
        job_id=job_id,
    )


@pytest.fixture
def job(infra, models, db) -> tuple[uuid.UUID, int]:
    """A queued job of two chunks for a registered version; its id and the version's."""
    job_id = uuid.uuid4()
    version_id = db.execute("SELECT id FROM model_versions WHERE name = 'binary' LIMIT 1").fetchone()[0]
    db.execute(
        "INSERT INTO jobs (id, model_version_id, status, n_rows, n_chunks) VALUES (%s, %s, 'queued', 3, 2)",
        (job_id, version_id),
    )
    return job_id, version_id


def test_chunks_advance_their_job_once_and_the_last_one_ends_it_with_a_notification(infra, db, job):
    job_id, version_id = job
    writer = RecordWriter(make_engine(infra.database_url), store_outputs_max_rows=10)
    first = np.array([0.25, 0.5], dtype=np.float32)
    last = np.array([0.75], dtype=np.float32)

    with psycopg.connect(infra.database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {JOB_DONE_CHANNEL}")
        stored = [
            writer.write_chunk(job_id, 0, 0, first, _record(job_id, 0, version_id, first)),
            # A redelivered message: neither the chunk, the progress nor the audit row again.
            writer.write_chunk(job_id, 0, 0, first, _record(job_id, 0, version_id, first)),
        ]
        running = db.execute("SELECT status, chunks_done FROM jobs WHERE id = %s", (job_id,)).fetchone()
        assert list(listener.notifies(timeout=0.3)) == []
        stored.append(writer.write_chunk(job_id, 1, 2, last, _record(job_id, 1, version_id, last)))
        heard = [n.payload for n in listener.notifies(timeout=10, stop_after=1)]

    assert stored == [True, False, True]
    assert running == ("running", 1)
    status, done, completed = db.execute(
        "SELECT status, chunks_done, completed_at FROM jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert (status, done) == ("succeeded", 2)
    assert completed is not None
    assert heard == [str(job_id)]
    chunks = db.execute(
        "SELECT outputs_f32, outputs, shape FROM job_chunks WHERE job_id = %s ORDER BY chunk_index", (job_id,)
    ).fetchall()
    assert [stored_outputs(*c).tolist() for c in chunks] == [[0.25, 0.5], [0.75]]
    audit = db.execute("SELECT count(*) FROM prediction_records WHERE job_id = %s", (job_id,)).fetchone()[0]
    assert audit == 2


def test_a_chunk_of_a_failed_job_is_stored_but_does_not_revive_it(infra, db, job):
    job_id, version_id = job
    writer = RecordWriter(make_engine(infra.database_url), store_outputs_max_rows=10)
    writer.fail_job(job_id, "chunk 1: wrong feature count")
    outputs = np.array([0.1, 0.2], dtype=np.float32)

    assert writer.write_chunk(job_id, 0, 0, outputs, _record(job_id, 0, version_id, outputs))

    status, done = db.execute("SELECT status, chunks_done FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert (status, done) == ("failed", 0)
    assert db.execute("SELECT count(*) FROM job_chunks WHERE job_id = %s", (job_id,)).fetchone()[0] == 1
