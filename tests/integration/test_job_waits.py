"""Long-polling a job (``GET /v1/jobs/{id}?wait=S``): the worker's NOTIFY wakes the waiting request."""

from __future__ import annotations

import time
import uuid

import numpy as np
import psycopg

from inference_api.job_waits import JobWaiter
from inference_common.db import make_engine
from inference_common.jobs import JOB_DONE_CHANNEL
from inference_common.keys import parse_prefix


def test_the_worker_notifies_the_end_of_a_job_when_it_commits(api, models, infra):
    rows = np.tile(models["binary"].rows, (2, 1))
    with psycopg.connect(infra.database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {JOB_DONE_CHANNEL}")
        response = api.post(f"{api.base}/v1/models/binary/jobs", json={"instances": rows.tolist()})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        payloads = [n.payload for n in listener.notifies(timeout=60, stop_after=1)]
    assert payloads == [job_id]
    # Sent in the transaction that ended the job: once it is heard, the job reads as ended.
    assert api.get(f"{api.base}/v1/jobs/{job_id}").json()["status"] == "succeeded"


def test_one_long_poll_answers_with_the_finished_job(api, models, stack):
    model = models["multiclass"]
    rows = np.tile(model.rows, (3, 1))
    job = api.post(f"{api.base}/v1/models/multiclass/jobs", json={"instances": rows.tolist()}).json()

    done = api.get(f"{api.base}/v1/jobs/{job['id']}", params={"wait": "60"}, timeout=90).json()

    assert done["status"] == "succeeded", done
    np.testing.assert_array_equal(np.asarray(done["predictions"], dtype=np.float32), model.expected(rows))
    assert "listening for ended jobs" in stack.api.log.read_text(errors="replace")


def test_a_long_poll_of_a_job_still_running_answers_when_its_wait_ends(api, infra, models):
    # A job whose chunks never reach a worker: recorded directly, nothing published.
    job_id = uuid.uuid4()
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        version_id, key_id = conn.execute(
            "SELECT mv.id, k.id FROM model_versions mv, api_keys k "
            "WHERE mv.name = 'binary' AND k.prefix = %s",
            (parse_prefix(api.headers["Authorization"].split()[1]),),
        ).fetchone()
        conn.execute(
            "INSERT INTO jobs (id, api_key_id, model_version_id, status, n_rows, n_chunks) "
            "VALUES (%s, %s, %s, 'running', 10, 1)",
            (job_id, key_id, version_id),
        )
    started = time.monotonic()

    view = api.get(f"{api.base}/v1/jobs/{job_id}", params={"wait": "1.5"}, timeout=30).json()

    assert view["status"] == "running"
    assert time.monotonic() - started >= 1.5


def test_a_notification_wakes_only_the_requests_waiting_for_that_job(infra):
    waiter = JobWaiter(make_engine(infra.database_url), max_waiters=2)
    job_id, other = uuid.uuid4(), uuid.uuid4()
    try:
        with waiter.watch(job_id) as event, psycopg.connect(infra.database_url, autocommit=True) as conn:
            assert event is not None
            deadline = time.monotonic() + 10
            while waiter.recheck_s != 1.0:  # the listener has not run LISTEN yet
                assert time.monotonic() < deadline, "the listener never connected"
                time.sleep(0.02)

            conn.execute("SELECT pg_notify(%s, %s)", (JOB_DONE_CHANNEL, str(other)))
            assert not event.wait(0.5)
            conn.execute("SELECT pg_notify(%s, %s)", (JOB_DONE_CHANNEL, str(job_id)))
            assert event.wait(5)
    finally:
        waiter.stop()


def test_requests_past_the_most_waiters_are_answered_at_once(infra):
    waiter = JobWaiter(make_engine(infra.database_url), max_waiters=1)
    try:
        with waiter.watch(uuid.uuid4()) as first, waiter.watch(uuid.uuid4()) as second:
            assert first is not None
            assert second is None
        with waiter.watch(uuid.uuid4()) as again:  # the slot is back
            assert again is not None
    finally:
        waiter.stop()


def test_the_listener_reconnects_after_its_connection_is_cut(infra):
    waiter = JobWaiter(make_engine(infra.database_url), max_waiters=1)
    job_id = uuid.uuid4()

    def until(listening: bool) -> None:
        deadline = time.monotonic() + 15
        while (waiter.recheck_s == 1.0) is not listening:
            assert time.monotonic() < deadline, f"the listener never became listening={listening}"
            time.sleep(0.02)

    try:
        with waiter.watch(job_id) as event, psycopg.connect(infra.database_url, autocommit=True) as conn:
            assert event is not None
            until(listening=True)
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE %s AND pid <> pg_backend_pid()",
                (f"LISTEN {JOB_DONE_CHANNEL}%",),
            )
            until(listening=False)
            # Losing the connection wakes every waiter (each looks at its job again).
            assert event.wait(5)
            event.clear()
            until(listening=True)

            conn.execute("SELECT pg_notify(%s, %s)", (JOB_DONE_CHANNEL, str(job_id)))
            assert event.wait(5)
    finally:
        waiter.stop()
