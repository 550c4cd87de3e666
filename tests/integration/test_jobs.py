"""Async jobs: large inputs travel in chunks and come back complete and in order."""

from __future__ import annotations

import time

import numpy as np
import requests


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
