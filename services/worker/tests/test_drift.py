"""The drift monitor: sliding window, evaluation cadence, first-window baseline, gauges."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from sqlalchemy import Engine, select, update

from inference_common.drift import OUTPUT_FEATURE, build_baseline
from inference_common.schema import model_versions
from inference_worker import drift, metrics
from inference_worker.batching import Incoming, serve_batch
from inference_worker.drift import DriftMonitor

FEATURES = [f"f{i}" for i in range(5)]


def _rows(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, 5)).astype(np.float32)
    rows[:, :2] += shift  # only the first two features move
    return rows


def _gauge(name: str, version: str, feature: str) -> float | None:
    labels = {"model": name, "version": version, "feature": feature}
    return metrics.aggregated_registry().get_sample_value("inference_worker_feature_drift_psi", labels)


def _window_gauge(name: str, version: str) -> float | None:
    labels = {"model": name, "version": version}
    return metrics.aggregated_registry().get_sample_value("inference_worker_drift_window_rows", labels)


def _stored_baseline(engine: Engine, model_version_id: int):
    with engine.connect() as conn:
        return conn.execute(
            select(model_versions.c.baseline).where(model_versions.c.id == model_version_id)
        ).scalar_one()


@pytest.fixture
def model(register_model, train_model):
    """A registered regression model under a name unique to the test (gauge labels stay apart)."""
    booster = train_model("regression")
    return register_model(booster, name=f"drift-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def version_of(engine: Engine):
    def read(model_version_id: int) -> str:
        with engine.connect() as conn:
            return conn.execute(
                select(model_versions.c.version).where(model_versions.c.id == model_version_id)
            ).scalar_one()

    return read


def _store_baseline(engine: Engine, model, rows: np.ndarray) -> None:
    outputs = model.booster.inplace_predict(rows)
    baseline = build_baseline(rows, outputs, FEATURES, "file")
    with engine.begin() as conn:
        conn.execute(update(model_versions).where(model_versions.c.id == model.id).values(baseline=baseline))


def _feed(monitor: DriftMonitor, model, name: str, version: str, rows: np.ndarray, batch: int = 50) -> None:
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        monitor.observe(model.id, name, version, FEATURES, chunk, model.booster.inplace_predict(chunk))


def test_it_raises_the_score_of_shifted_features_only(engine, model, version_of):
    name, version = _name(engine, model.id), version_of(model.id)
    _store_baseline(engine, model, _rows(5000, seed=1))
    monitor = DriftMonitor(engine, window_rows=1000, eval_rows=200)

    _feed(monitor, model, name, version, _rows(1000, seed=2))
    for feature in FEATURES:
        assert _gauge(name, version, feature) < 0.1
    assert _gauge(name, version, OUTPUT_FEATURE) < 0.1

    _feed(monitor, model, name, version, _rows(1000, seed=3, shift=1.5))
    assert _gauge(name, version, "f0") > 0.25
    assert _gauge(name, version, "f1") > 0.25
    for feature in FEATURES[2:]:
        assert _gauge(name, version, feature) < 0.1
    assert _window_gauge(name, version) == pytest.approx(1000, abs=50)


def test_it_recomputes_only_every_eval_rows(engine, model, version_of):
    name, version = _name(engine, model.id), version_of(model.id)
    _store_baseline(engine, model, _rows(2000, seed=1))
    monitor = DriftMonitor(engine, window_rows=500, eval_rows=100)

    _feed(monitor, model, name, version, _rows(90, seed=2), batch=30)
    assert _gauge(name, version, "f0") is None
    assert _window_gauge(name, version) == 90
    _feed(monitor, model, name, version, _rows(10, seed=3), batch=10)
    first = _gauge(name, version, "f0")
    assert first is not None

    # 99 shifted rows later the gauge still holds the last evaluation ...
    _feed(monitor, model, name, version, _rows(99, seed=4, shift=3.0), batch=33)
    assert _gauge(name, version, "f0") == first
    # ... and the 100th row triggers the next one.
    _feed(monitor, model, name, version, _rows(1, seed=5, shift=3.0), batch=1)
    assert _gauge(name, version, "f0") > first


def test_its_window_slides_so_old_drift_ages_out(engine, model, version_of):
    name, version = _name(engine, model.id), version_of(model.id)
    _store_baseline(engine, model, _rows(5000, seed=1))
    monitor = DriftMonitor(engine, window_rows=400, eval_rows=100)

    _feed(monitor, model, name, version, _rows(800, seed=2, shift=2.0), batch=20)
    assert monitor.psi(model.id)["f0"] > 1.0
    _feed(monitor, model, name, version, _rows(800, seed=3), batch=20)
    assert monitor.psi(model.id)["f0"] < 0.1
    # Blocks of 1/20 of the window: it holds the last 400 rows, at most one block more.
    assert 400 <= _window_gauge(name, version) <= 420


def test_its_first_full_window_becomes_the_shared_baseline(engine, model, version_of):
    name, version = _name(engine, model.id), version_of(model.id)
    first = DriftMonitor(engine, window_rows=300, eval_rows=100)
    other = DriftMonitor(engine, window_rows=300, eval_rows=100)

    _feed(first, model, name, version, _rows(250, seed=1))
    assert _stored_baseline(engine, model.id) is None
    assert _gauge(name, version, "f0") is None
    _feed(first, model, name, version, _rows(50, seed=2))
    stored = _stored_baseline(engine, model.id)
    assert stored["source"] == "first_window"
    assert stored["n_rows"] == 300
    assert [entry["name"] for entry in stored["features"]] == FEATURES

    # Another process that had not seen it yet builds its own window, loses
    # the conditional write and adopts the stored one.
    other_rows = _rows(300, seed=9)
    _feed(other, model, name, version, other_rows)
    assert _stored_baseline(engine, model.id) == stored
    assert other.baseline_of(model.id) == stored

    # From then on both compare against it.
    _feed(other, model, name, version, _rows(200, seed=10, shift=2.0))
    assert _gauge(name, version, "f0") > 0.25


def test_it_adopts_a_baseline_stored_after_it_started(engine, model, version_of):
    name, version = _name(engine, model.id), version_of(model.id)
    now = [0.0]
    monitor = DriftMonitor(engine, window_rows=1000, eval_rows=100, baseline_ttl_s=30, clock=lambda: now[0])
    _feed(monitor, model, name, version, _rows(100, seed=1))
    _store_baseline(engine, model, _rows(2000, seed=2))
    _feed(monitor, model, name, version, _rows(100, seed=3))
    assert monitor.baseline_of(model.id) is None  # looked up at most every 30 s
    now[0] = 31.0
    _feed(monitor, model, name, version, _rows(100, seed=4))
    assert monitor.baseline_of(model.id)["source"] == "file"


def test_it_never_raises_into_the_request_path(engine, model, version_of, tmp_path):
    name, version = _name(engine, model.id), version_of(model.id)
    _store_baseline(engine, model, _rows(500, seed=1))
    monitor = DriftMonitor(engine, window_rows=100, eval_rows=10)
    _feed(monitor, model, name, version, _rows(20, seed=3))
    assert monitor.errors == 0
    # Rows of the wrong width for the baseline.
    monitor.observe(model.id, name, version, None, np.zeros((4, 3), np.float32), np.zeros(4, np.float32))
    assert monitor.errors == 1

    from inference_common.db import make_engine

    broken = DriftMonitor(make_engine(f"sqlite:///{tmp_path}/missing/db.sqlite3"), window_rows=100)
    rows = _rows(10, seed=2)
    broken.observe(model.id, name, version, FEATURES, rows, model.booster.inplace_predict(rows))
    assert broken.errors == 1


def test_served_batches_feed_the_process_monitor(engine, cache, model, version_of, monkeypatch):
    monkeypatch.setenv("WORKER_DRIFT_WINDOW_ROWS", "40")
    monkeypatch.setenv("WORKER_DRIFT_EVAL_ROWS", "10")
    monkeypatch.setattr(drift, "_monitor", None)
    rows = _rows(40, seed=1)
    batch = [
        Incoming(
            task_id=f"r{i}",
            reply_to="reply-q",
            payload={
                "request_id": f"r{i}",
                "model": "m",
                "version": "1",
                "model_version_id": model.id,
                "n_features": 5,
                "rows": rows[i * 10 : (i + 1) * 10].tolist(),
                "enqueued_at": time.time(),
            },
        )
        for i in range(4)
    ]
    serve_batch(cache, batch, lambda *args: None)
    # 40 rows served: the first window is full and stored with the version.
    assert _stored_baseline(engine, model.id)["n_rows"] == 40
    assert drift.monitor(engine).baseline_of(model.id) is not None


def _name(engine: Engine, model_version_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(
            select(model_versions.c.name).where(model_versions.c.id == model_version_id)
        ).scalar_one()
