"""Job chunks in the worker: stored outputs keep every digit; drift sees an even sample of big chunks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select

from inference_common.jobs import stored_outputs
from inference_common.schema import job_chunks, jobs
from inference_worker.records import PredictionRow, RecordWriter
from inference_worker.sampling import even_sample


def _job(engine, model_version_id: int) -> uuid.UUID:
    job_id = uuid.uuid4()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            jobs.insert().values(
                id=job_id,
                model_version_id=model_version_id,
                status="queued",
                n_rows=3,
                n_chunks=1,
                chunks_done=0,
                error="",
                trace_id="",
                created_at=now,
                updated_at=now,
            )
        )
    return job_id


def test_stored_outputs_are_the_float32_outputs_exactly_as_python_writes_them(
    engine, register_model, train_model
):
    model = register_model(train_model("regression"))
    job_id = _job(engine, model.id)
    outputs = np.array([0.1, 1 / 3, 1e-8], dtype=np.float32)
    record = PredictionRow(
        request_id="c0",
        api_key_id=None,
        model_version_id=model.id,
        protocol="job",
        inputs=np.zeros((3, 5), dtype=np.float32),
        outputs=outputs,
        latency_ms=1.0,
        predict_ms=0.1,
        batch_size=1,
        device="cpu",
        trace_id="",
        status="ok",
        job_id=job_id,
    )

    assert RecordWriter(engine, store_outputs_max_rows=0).write_chunk(job_id, 0, 0, outputs, record)

    with engine.connect() as conn:
        columns = (job_chunks.c.outputs_f32, job_chunks.c.outputs, job_chunks.c.shape)
        stored = conn.execute(select(*columns)).one()
    # The float32 outputs bit for bit, as little-endian bytes; no JSON copy.
    assert bytes(stored.outputs_f32) == outputs.astype("<f4").tobytes()
    assert stored.outputs is None
    # Read back as float64 of the float32 values (0.1f is 0.10000000149011612), not a shorter repr.
    assert stored_outputs(stored.outputs_f32, stored.outputs, stored.shape).tolist() == outputs.tolist()
    assert stored_outputs(stored.outputs_f32, None, stored.shape)[0] == 0.10000000149011612


def test_a_chunk_no_larger_than_the_limit_is_observed_whole():
    rows, outputs = np.arange(20.0).reshape(10, 2), np.arange(10.0)

    sampled_rows, sampled_outputs = even_sample(rows, outputs, 10)

    assert sampled_rows is rows
    assert sampled_outputs is outputs


@pytest.mark.parametrize(("n", "limit"), [(11, 10), (1000, 7), (100_000, 2000), (5, 1)])
def test_a_larger_chunk_is_sampled_evenly_with_its_own_outputs(n: int, limit: int):
    rows = np.arange(n, dtype=np.float32).repeat(3).reshape(n, 3)
    outputs = np.arange(n, dtype=np.float32) * 2

    sampled_rows, sampled_outputs = even_sample(rows, outputs, limit)

    picked = sampled_rows[:, 0].astype(np.int64)
    assert len(picked) == limit
    assert len(set(picked.tolist())) == limit
    assert picked[0] == 0
    if limit > 1:
        assert picked[-1] == n - 1
        gaps = np.diff(picked)
        assert gaps.max() - gaps.min() <= 1
    np.testing.assert_array_equal(sampled_outputs, picked * 2)


def test_it_refuses_an_empty_sample():
    with pytest.raises(ValueError, match="limit"):
        even_sample(np.zeros((3, 1)), np.zeros(3), 0)
