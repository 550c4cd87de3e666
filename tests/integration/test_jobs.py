"""Async jobs: large inputs travel in chunks and come back complete and in order."""

from __future__ import annotations

import time

import numpy as np
import orjson
import requests

from support.stack import manage, queue_depth


def _wait_for_job(api, location: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"{api.base}{location}").json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {location} did not finish within {timeout}s: {body}")


def test_a_large_job_is_accepted_chunked_and_answered_in_order(api, models, db):
    model = models["multiclass"]
    rows = np.tile(model.rows, (3, 1))  # 450 rows -> 5 chunks of 100 in this suite
    response = api.post(f"{api.base}/v1/models/multiclass/jobs", json={"instances": rows.tolist()})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert accepted["chunks"] == 5
    assert response.headers["Location"] == f"/v1/jobs/{accepted['id']}"
    done = _wait_for_job(api, response.headers["Location"])
    assert done["status"] == "succeeded", done
    assert done["chunks_done"] == 5
    got = np.asarray(done["predictions"], dtype=np.float32)
    np.testing.assert_array_equal(got, model.expected(rows))
    chunks = db.execute("SELECT count(*) FROM job_chunks WHERE job_id = %s", (accepted["id"],)).fetchone()[0]
    assert chunks == 5


def _v2_input(rows: np.ndarray, binary: bool) -> dict:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP32"}
    if binary:
        return {**tensor, "parameters": {"binary_data_size": rows.astype("<f4").nbytes}}
    return {**tensor, "data": rows.reshape(-1).tolist()}


def test_a_job_takes_v2_bodies_json_or_framed_with_binary_tensors(api, models):
    model = models["multiclass"]
    rows = np.tile(model.rows, (2, 1)).astype(np.float32)
    as_json = api.post(f"{api.base}/v1/models/multiclass/jobs", json={"inputs": [_v2_input(rows, False)]})
    header = orjson.dumps({"inputs": [_v2_input(rows, True)]})
    framed = api.post(
        f"{api.base}/v1/models/multiclass/jobs",
        data=header + rows.astype("<f4").tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    for response in (as_json, framed):
        assert response.status_code == 202, response.text
        done = _wait_for_job(api, response.headers["Location"])
        assert done["status"] == "succeeded", done
        np.testing.assert_array_equal(np.asarray(done["predictions"], dtype=np.float32), model.expected(rows))
    # A framed body that lies about its size is refused before anything is queued.
    short = api.post(
        f"{api.base}/v1/models/multiclass/jobs",
        data=header + rows.astype("<f4").tobytes()[:-4],
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert short.status_code == 400, short.text
    assert short.json()["type"].endswith("#invalid_binary_data")


def test_a_job_can_target_a_version(api, models):
    staging = models["binary-staging"]
    rows = staging.rows[:150]
    response = api.post(
        f"{api.base}/v1/models/binary/jobs",
        params={"version": staging.version},
        json={"instances": rows.tolist()},
    )
    assert response.status_code == 202
    done = _wait_for_job(api, response.headers["Location"])
    assert done["model_version"] == staging.version
    np.testing.assert_array_equal(np.asarray(done["predictions"], dtype=np.float32), staging.expected(rows))


def test_a_job_is_invisible_to_other_keys(api, stack, keys, models):
    response = api.post(
        f"{api.base}/v1/models/binary/jobs", json={"instances": models["binary"].rows[:5].tolist()}
    )
    location = response.headers["Location"]
    other = requests.get(f"{stack.url}{location}", headers={"Authorization": f"Bearer {keys.other}"})
    assert other.status_code == 404
    assert api.get(f"{api.base}/v1/jobs/not-a-uuid").status_code == 404


def test_a_job_with_a_bad_row_is_refused_before_anything_is_queued(api, db):
    before = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    rows = [[0.5] * 30] * 10 + [[0.5] * 29]
    response = api.post(f"{api.base}/v1/models/binary/jobs", json={"instances": rows})
    assert response.status_code == 400
    assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == before


def test_a_model_that_fails_to_load_fails_visibly_and_dead_letters(api, infra, stack, models, db, tmp_path):

    path = tmp_path / "broken.json"
    # Artifacts are stored by content: an attribute makes this file differ from the
    # registered regression model, whose artifact must stay intact for other tests.
    booster = models["regression"].booster.copy()
    booster.set_attr(purpose="broken-on-purpose")
    booster.save_model(path)
    manage(infra.env, "register_model", "--name", "broken", "--file", str(path), "--stage", "production")
    artifact = db.execute("SELECT artifact_path FROM model_versions WHERE name = 'broken'").fetchone()[0]
    (infra.model_store / artifact).write_text("{ not a model")
    dead_before = queue_depth(infra.broker_url, f"{stack.prefix}.dlq")

    rows = models["regression"].rows[:2].tolist()
    sync = api.post(f"{api.base}/v1/models/broken:predict", json={"instances": rows})
    assert sync.status_code == 500
    assert "sha256" in sync.json()["detail"]

    response = api.post(f"{api.base}/v1/models/broken/jobs", json={"instances": rows})
    assert response.status_code == 202
    done = _wait_for_job(api, response.headers["Location"], timeout=90)
    assert done["status"] == "failed"
    assert "sha256" in done["error"]
    # The sync request is answered with the error and dead-lettered at once; after its
    # bounded retries the chunk is rejected into the dead-letter queue too.
    deadline = time.monotonic() + 20
    while (
        queue_depth(infra.broker_url, f"{stack.prefix}.dlq") < dead_before + 2 and time.monotonic() < deadline
    ):
        time.sleep(0.3)
    assert queue_depth(infra.broker_url, f"{stack.prefix}.dlq") == dead_before + 2
