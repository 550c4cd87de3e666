"""Idempotent audit/job writes, device choice and the exec probes."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import func, select

from inference_common.jobs import stored_outputs
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


def test_small_requests_keep_their_outputs_and_digests(engine, store, register_model, train_model):
    model = register_model(train_model("regression"))
    writer = RecordWriter(engine, store_outputs_max_rows=2)
    row = _row("small", model.id)
    writer.write_predictions([row])
    with engine.connect() as conn:
        stored = conn.execute(select(prediction_records)).one()
    assert stored.outputs == [1.0, 1.0]
    assert stored.n_rows == 2
    assert stored.inputs_digest == hashlib.sha256(bytes(2 * 5 * 4)).hexdigest()
    assert stored.outputs_digest == hashlib.sha256(np.ones(2, dtype=np.float32).tobytes()).hexdigest()
    assert stored.inputs_digest != stored.outputs_digest


def test_an_error_row_has_no_outputs_digest(engine, store, register_model, train_model):
    model = register_model(train_model("regression"))
    failed = PredictionRow(
        request_id="bad",
        api_key_id=None,
        model_version_id=model.id,
        protocol="v2",
        inputs=np.zeros((1, 4), dtype=np.float32),
        outputs=None,
        latency_ms=1.0,
        predict_ms=0.0,
        batch_size=1,
        device="",
        trace_id="",
        status="error",
        error="invalid_input: expected 5 features per row",
    )
    RecordWriter(engine, store_outputs_max_rows=10).write_predictions([failed])
    with engine.connect() as conn:
        stored = conn.execute(select(prediction_records)).one()
    assert (stored.status, stored.outputs, stored.outputs_digest) == ("error", None, "")
    assert stored.error == "invalid_input: expected 5 features per row"


def test_writing_no_rows_is_a_no_op(engine):
    RecordWriter(engine, store_outputs_max_rows=10).write_predictions([])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(prediction_records)).scalar() == 0


def test_a_chunk_stores_its_outputs_shape_and_audit_row(engine, store, register_model, train_model):
    model = register_model(train_model("regression"))
    writer = RecordWriter(engine, store_outputs_max_rows=10)
    job_id = _job(engine, model.id, chunks=1)
    outputs = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    assert writer.write_chunk(job_id, 0, 0, outputs, _row("c0", model.id, job_id)) is True
    with engine.connect() as conn:
        chunk = conn.execute(select(job_chunks)).one()
        record = conn.execute(select(prediction_records)).one()
        job = conn.execute(select(jobs)).one()
    assert (chunk.n_rows, chunk.shape) == (2, [2, 2])
    restored = stored_outputs(chunk.outputs_f32, chunk.outputs, chunk.shape)
    assert restored.tolist() == [[0.25, 0.75], [0.5, 0.5]]
    assert (record.request_id, record.job_id) == ("c0", job_id)
    assert (job.status, job.chunks_done) == ("succeeded", 1)


def test_a_succeeded_job_is_never_failed_afterwards(engine, store, register_model, train_model):
    model = register_model(train_model("regression"))
    writer = RecordWriter(engine, store_outputs_max_rows=10)
    job_id = _job(engine, model.id, chunks=1)
    writer.write_chunk(job_id, 0, 0, np.ones(2, dtype=np.float32), _row("c0", model.id, job_id))
    writer.fail_job(job_id, "late failure")
    with engine.connect() as conn:
        assert conn.execute(select(jobs.c.status, jobs.c.error)).one() == ("succeeded", "")


def test_a_failure_message_is_truncated_and_completes_the_job(engine, store, register_model, train_model):
    model = register_model(train_model("regression"))
    job_id = _job(engine, model.id, chunks=3)
    RecordWriter(engine, store_outputs_max_rows=10).fail_job(job_id, "x" * 5000)
    with engine.connect() as conn:
        job = conn.execute(select(jobs)).one()
    assert (job.status, len(job.error)) == ("failed", 2000)
    assert job.completed_at is not None


def test_worker_settings_convert_units_and_defaults():
    settings = WorkerSettings.from_env(
        {
            "WORKER_BATCH_MAX_WAIT_MS": "5",
            "WORKER_SOFT_TIME_LIMIT": "10",
            "BROKER_QUEUE_PREFIX": "t2",
            "MODEL_STORE": "/models",
        }
    )
    assert settings.batch_max_wait_s == 0.005
    assert (settings.soft_time_limit_s, settings.time_limit_s) == (10, 40)
    assert settings.queues.jobs == "t2.jobs"
    assert str(settings.model_store) == "/models"
    assert settings.concurrency is None
    assert settings.device == "auto"
    assert (settings.batch_max_size, settings.model_cache_size, settings.max_retries) == (64, 8, 3)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"WORKER_DEVICE": "gpu"}, "WORKER_DEVICE must be one of auto, cpu, cuda"),
        ({"WORKER_BATCH_MAX_SIZE": "0"}, "WORKER_BATCH_MAX_SIZE must be >= 1"),
        ({"WORKER_BATCH_MAX_WAIT_MS": "soon"}, "WORKER_BATCH_MAX_WAIT_MS must be a number"),
        ({"WORKER_CONCURRENCY": "-1"}, "WORKER_CONCURRENCY must be >= 0"),
        ({"BROKER_URL": "amqp://a", "BROKER_URL_FILE": "/x"}, "not both"),
    ],
)
def test_worker_settings_refuse_bad_values_naming_the_variable(env, needle):
    with pytest.raises(ConfigError, match=needle):
        WorkerSettings.from_env(env)


def test_the_runtime_is_built_once_per_process_from_settings(tmp_path, monkeypatch):
    from inference_worker import runtime

    monkeypatch.setattr(runtime, "_runtime", None)
    monkeypatch.setattr(runtime, "_device", None)
    settings = WorkerSettings.from_env(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "MODEL_STORE": str(tmp_path / "models")}
    )
    assert runtime.get_device() == "cpu"
    built = runtime.get_runtime(settings)
    assert runtime.get_runtime(settings) is built
    assert (built.pid, built.device) == (os.getpid(), "cpu")
    assert built.records.engine.url.database == f"{tmp_path}/db.sqlite3"
