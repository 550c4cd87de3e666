"""Idempotent audit/job writes, device choice and the exec probes."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import func, select

from inference_common.schema import job_chunks, jobs, prediction_records
from inference_common.settings import ConfigError
from inference_worker import probe
from inference_worker.config import WorkerSettings
from inference_worker.device import DeviceUnavailableError, resolve_device
from inference_worker.records import PredictionRow, RecordWriter


def _row(request_id: str, model_version_id: int, job_id: uuid.UUID | None = None) -> PredictionRow:
    return PredictionRow(
        request_id=request_id,
        api_key_id=None,
        model_version_id=model_version_id,
        protocol="job",
        inputs=np.zeros((2, 5), dtype=np.float32),
        outputs=np.ones(2, dtype=np.float32),
        latency_ms=1.0,
        predict_ms=0.1,
        batch_size=1,
        device="cpu",
        trace_id="",
        status="ok",
        job_id=job_id,
    )


def test_redelivered_predictions_are_recorded_once(engine, store, register_model, train_model):
    model = register_model(train_model("regression"))
    writer = RecordWriter(engine, store_outputs_max_rows=1)
    writer.write_predictions([_row("a", model.id), _row("b", model.id)])
    writer.write_predictions([_row("a", model.id)])
    with engine.connect() as conn:
        rows = conn.execute(select(prediction_records.c.request_id, prediction_records.c.outputs)).all()
    assert sorted(r.request_id for r in rows) == ["a", "b"]
    assert all(r.outputs is None for r in rows), "outputs above the row limit are kept only as a digest"


def _job(engine, model_id: int, chunks: int) -> uuid.UUID:
    job_id = uuid.uuid4()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            jobs.insert().values(
                id=job_id,
                model_version_id=model_id,
                status="queued",
                n_rows=2 * chunks,
                n_chunks=chunks,
                chunks_done=0,
                error="",
                trace_id="",
                created_at=now,
                updated_at=now,
            )
        )
    return job_id


def test_a_job_succeeds_after_its_last_chunk_even_with_redeliveries(
    engine, store, register_model, train_model
):
    model = register_model(train_model("regression"))
    writer = RecordWriter(engine, store_outputs_max_rows=10)
    job_id = _job(engine, model.id, chunks=2)
    outputs = np.array([0.5, 1.5], dtype=np.float32)
    assert writer.write_chunk(job_id, 0, 0, outputs, _row("j0", model.id, job_id)) is True
    assert writer.write_chunk(job_id, 0, 0, outputs, _row("j0", model.id, job_id)) is False
    with engine.connect() as conn:
        assert conn.execute(select(jobs.c.status, jobs.c.chunks_done)).one() == ("running", 1)
    assert writer.write_chunk(job_id, 1, 2, outputs, _row("j1", model.id, job_id)) is True
    with engine.connect() as conn:
        job = conn.execute(select(jobs)).one()
        assert (job.status, job.chunks_done) == ("succeeded", 2)
        assert job.completed_at is not None
        assert conn.execute(select(func.count()).select_from(job_chunks)).scalar() == 2


def test_a_failed_job_stays_failed(engine, store, register_model, train_model):
    model = register_model(train_model("regression"))
    writer = RecordWriter(engine, store_outputs_max_rows=10)
    job_id = _job(engine, model.id, chunks=2)
    writer.fail_job(job_id, "chunk 0: model missing")
    writer.write_chunk(job_id, 1, 2, np.ones(2, dtype=np.float32), _row("late", model.id, job_id))
    with engine.connect() as conn:
        assert conn.execute(select(jobs.c.status, jobs.c.error)).one() == ("failed", "chunk 0: model missing")


def test_this_cpu_machine_resolves_to_cpu_and_refuses_cuda():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceUnavailableError, match="WORKER_DEVICE=cuda"):
        resolve_device("cuda")


def test_worker_settings_are_validated():
    settings = WorkerSettings.from_env({"WORKER_DEVICE": "CPU", "WORKER_CONCURRENCY": "3"})
    assert settings.device == "cpu"
    assert settings.concurrency == 3
    assert settings.time_limit_s > settings.soft_time_limit_s
    with pytest.raises(ConfigError, match="WORKER_DEVICE"):
        WorkerSettings.from_env({"WORKER_DEVICE": "tpu"})
    with pytest.raises(ConfigError, match="WORKER_TIME_LIMIT"):
        WorkerSettings.from_env({"WORKER_SOFT_TIME_LIMIT": "60", "WORKER_TIME_LIMIT": "30"})


def test_probes_follow_the_heartbeat_and_ready_files(tmp_path, monkeypatch):
    beat, ready = tmp_path / "beat", tmp_path / "ready"
    monkeypatch.setenv("WORKER_HEARTBEAT_FILE", str(beat))
    monkeypatch.setenv("WORKER_READY_FILE", str(ready))
    monkeypatch.setenv("WORKER_HEARTBEAT_MAX_AGE_S", "30")
    assert probe.main(["probe", "live"]) == 1
    beat.touch()
    assert probe.main(["probe", "live"]) == 0
    assert probe.main(["probe", "ready"]) == 1
    ready.touch()
    assert probe.main(["probe", "ready"]) == 0
    old = time.time() - 120
    os.utime(beat, (old, old))
    assert probe.main(["probe", "live"]) == 1
    assert probe.main(["probe", "other"]) == 2
