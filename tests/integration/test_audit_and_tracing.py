"""Audit rows are written for every prediction, and one trace spans api and worker."""

from __future__ import annotations

import numpy as np


def test_each_prediction_leaves_an_audit_row(api, models, keys, db):
    rows = models["regression"].rows[:3]
    response = api.post(f"{api.base}/v1/models/regression:predict", json={"instances": rows.tolist()})
    request_id = response.headers["X-Request-ID"]
    record = _wait_for_record(db, request_id)
    key_id = db.execute("SELECT id FROM api_keys WHERE prefix = %s", (keys.full.split("_")[1],)).fetchone()[0]
    version = db.execute(
        "SELECT version FROM model_versions WHERE id = %s", (record["model_version_id"],)
    ).fetchone()[0]
    assert record["api_key_id"] == key_id
    assert version == models["regression"].version
    assert record["status"] == "ok"
    assert record["n_rows"] == 3
    assert record["protocol"] == "v1"
    assert record["device"] == "cpu"
    assert record["latency_ms"] > 0
    np.testing.assert_array_equal(
        np.asarray(record["outputs"], dtype=np.float32), models["regression"].expected(rows)
    )
    assert len(record["outputs_digest"]) == 64
    assert len(record["trace_id"]) == 32


def test_one_trace_covers_the_api_and_the_worker(api, models, db, otlp):
    rows = models["binary"].rows[:2]
    response = api.post(
        f"{api.base}/v2/models/binary/infer",
        json={
            "inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP32", "data": rows.reshape(-1).tolist()}]
        },
    )
    assert response.status_code == 200
    trace_id = _wait_for_record(db, response.headers["X-Request-ID"])["trace_id"]

    def complete(spans):
        services = {(s.service, s.name) for s in spans if s.trace_id == trace_id}
        return (
            ("api", "inference.reply") not in services
            and {
                ("worker", "inference.reply"),
                ("worker", "xgboost.predict"),
            }
            <= services
            and any(service == "api" and "infer" in name for service, name in services)
        )

    spans = [s for s in otlp.wait_for(complete) if s.trace_id == trace_id]
    by_service = {s.service for s in spans}
    assert {"api", "worker"} <= by_service
    names = {s.name for s in spans}
    assert "apply_async/inference.predict" in names, (
        names
    )  # the publish span, from the celery instrumentation
    predict = next(s for s in spans if s.name == "xgboost.predict")
    assert predict.attributes["model.name"] == "binary"
    # No raw features or keys on any span.
    for span in spans:
        for value in span.attributes.values():
            assert "ipk_" not in str(value)


def test_the_worker_database_writes_are_traced(api, models, db, otlp):
    rows = models["binary"].rows[:1]
    response = api.post(f"{api.base}/v1/models/binary:predict", json={"instances": rows.tolist()})
    trace_id = _wait_for_record(db, response.headers["X-Request-ID"])["trace_id"]
    # Each process exports on its own schedule: wait for both sides of the trace.
    spans = otlp.wait_for(
        lambda spans: (
            any(
                s.trace_id == trace_id and s.service == "worker" and s.name.startswith("INSERT")
                for s in spans
            )
            and any(s.trace_id == trace_id and s.service == "api" for s in spans)
        )
    )
    assert {s.service for s in spans if s.trace_id == trace_id} >= {"api", "worker"}


def _wait_for_record(db, request_id: str, timeout: float = 20.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cursor = db.execute("SELECT * FROM prediction_records WHERE request_id = %s", (request_id,))
        row = cursor.fetchone()
        if row is not None:
            return dict(zip([c.name for c in cursor.description], row, strict=True))
        time.sleep(0.1)
    raise AssertionError(f"no audit row for request {request_id}")
