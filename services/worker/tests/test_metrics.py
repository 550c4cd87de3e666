"""The worker's metrics: pool processes' samples summed by the main process, served over HTTP."""

from __future__ import annotations

import multiprocessing
import socket

import pytest
import requests
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

from inference_worker import metrics


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _served(port: int, name: str, **labels: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def _serve_one_request(model: str) -> None:
    metrics.count_task("inference.predict", model, "1", "cpu", metrics.OK)
    metrics.PREDICT_DURATION.labels(model, "1", "cpu").observe(0.01)


def test_it_runs_prometheus_client_in_multiprocess_mode():
    # Importing the module set the directory before prometheus_client chose its value class.
    assert metrics.multiproc_dir().is_dir()
    assert values.ValueClass is not values.MutexValue


def test_it_serves_the_sum_of_what_forked_pool_processes_counted():
    model = "forked"
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=_serve_one_request, args=(model,)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(10)
        assert child.exitcode == 0
    port = _free_port()
    server = metrics.serve(port)
    try:
        ours = {"model": model, "version": "1", "device": "cpu"}
        assert _served(port, "inference_worker_tasks_total", outcome="ok", **ours) == 3
        assert _served(port, "inference_worker_predict_duration_seconds_count", **ours) == 3
    finally:
        server.shutdown()  # type: ignore[union-attr]


def test_port_zero_serves_nothing():
    assert metrics.serve(0) is None


def test_stale_files_of_an_earlier_run_are_wiped(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    assert metrics.wipe_stale_files() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_drift_gauges_report_the_highest_value_of_any_process():
    assert metrics.FEATURE_DRIFT_PSI._multiprocess_mode == "max"
    assert metrics.DRIFT_WINDOW_ROWS._multiprocess_mode == "max"


@pytest.mark.parametrize(
    "metric",
    [
        metrics.TASKS,
        metrics.QUEUE_WAIT,
        metrics.BATCH_SIZE,
        metrics.PREDICT_DURATION,
        metrics.MODEL_LOAD_DURATION,
        metrics.MODEL_LOAD_FAILURES,
        metrics.FEATURE_DRIFT_PSI,
        metrics.DRIFT_WINDOW_ROWS,
    ],
)
def test_no_metric_is_labelled_by_anything_unbounded(metric):
    assert set(metric._labelnames) <= {"task", "model", "version", "device", "outcome", "queue", "feature"}


def test_a_busy_port_is_logged_and_does_not_stop_the_worker(caplog):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        assert metrics.serve(taken.getsockname()[1]) is None
    assert "worker metrics server not started" in caplog.text
