"""Reliability basics, with real processes and signals.

- broker down: the api answers 503 with Retry-After and records nothing;
- a worker killed with SIGKILL while it holds requests: every accepted request is still answered;
- a worker sent SIGTERM (what a scale-down does): it shuts down warm and nothing is lost.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
import requests

from support.stack import Stack, free_port, manage, queue_depth, wait_until


@pytest.fixture
def isolated(infra, models, run_id, request) -> Iterator[Stack]:
    """An api + worker pair with queues of its own, so killing it disturbs no other test."""
    stack = Stack(env=infra.env, logs=infra.logs, prefix=f"{request.node.name[:20]}-{run_id}")
    try:
        yield stack
    finally:
        stack.stop()


def _fire(stack: Stack, key: str, rows: np.ndarray) -> tuple[ThreadPoolExecutor, list[Future]]:
    pool = ThreadPoolExecutor(max_workers=len(rows))

    def one(row: np.ndarray) -> requests.Response:
        return requests.post(
            f"{stack.url}/v1/models/binary:predict",
            json={"instances": [row.tolist()]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=90,
        )

    return pool, [pool.submit(one, row) for row in rows]


def _assert_all_answered(futures: list[Future], model, rows: np.ndarray, db) -> None:
    responses = [future.result(timeout=90) for future in futures]
    assert [r.status_code for r in responses] == [200] * len(rows), [
        r.text for r in responses if r.status_code != 200
    ]
    got = np.asarray([r.json()["predictions"][0] for r in responses], dtype=np.float32)
    np.testing.assert_array_equal(got, model.expected(rows))
    request_ids = [r.headers["X-Request-ID"] for r in responses]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        count = db.execute(
            "SELECT count(*) FROM prediction_records WHERE request_id = ANY(%s)", (request_ids,)
        ).fetchone()[0]
        if count == len(rows):
            break
        time.sleep(0.2)
    assert count == len(rows), "every answered request has exactly one audit row"


def test_the_api_answers_503_with_retry_after_when_the_broker_is_down(infra, models, run_id, db):
    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    stack = Stack(env={**infra.env, "BROKER_URL": dead_broker}, logs=infra.logs, prefix=f"down-{run_id}")
    try:
        stack.start_api(workers=1, ready=False)
        key = manage(infra.env, "create_api_key", "outage")
        headers = {"Authorization": f"Bearer {key}"}
        assert requests.get(f"{stack.url}/readyz", timeout=10).status_code == 503
        jobs_before = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
        started = time.monotonic()
        sync = requests.post(
            f"{stack.url}/v1/models/binary:predict",
            json={"instances": [[0.5] * 30]},
            headers=headers,
            timeout=30,
        )
        job = requests.post(
            f"{stack.url}/v1/models/binary/jobs",
            json={"instances": [[0.5] * 30]},
            headers=headers,
            timeout=30,
        )
        v2 = requests.post(
            f"{stack.url}/v2/models/binary/infer",
            json={"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}]},
            headers=headers,
            timeout=30,
        )
        assert time.monotonic() - started < 20, "refusals must be prompt, not hang"
        for response in (sync, job, v2):
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0
        assert "broker" in sync.json()["detail"]
        assert "broker" in v2.json()["error"]
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == jobs_before, "nothing accepted"
    finally:
        stack.stop()


def test_requests_held_by_a_worker_killed_with_sigkill_are_all_answered(isolated, infra, keys, models, db):
    stack = isolated
    worker = stack.start_worker(concurrency=2)
    stack.start_api(workers=1)
    model = models["binary"]
    rows = model.rows[:20]
    # Freeze the worker so the requests are delivered to it but cannot be answered.
    worker.signal(signal.SIGSTOP)
    pool, futures = _fire(stack, keys.full, rows)
    _wait_for_queued(infra.broker_url, f"{stack.prefix}.predict")
    assert not any(f.done() for f in futures), "no request may be answered while the worker is frozen"
    worker.signal(signal.SIGKILL)
    worker.popen.wait(10)
    stack.start_worker(concurrency=2)
    _assert_all_answered(futures, model, rows, db)
    pool.shutdown()


def _wait_for_queued(broker_url: str, queue: str) -> None:
    """Wait until the fired requests sit in ``queue`` (the depth stops changing).

    The api coalesces requests that wait to be published at the same moment,
    so the queue holds at most as many messages as requests, often fewer.
    """
    last = -1

    def settled() -> bool:
        nonlocal last
        depth = queue_depth(broker_url, queue)
        settled_now = depth > 0 and depth == last
        last = depth
        return settled_now

    wait_until(settled, 30)


def _probe(worker, kind: str) -> int:
    command = [sys.executable, "-m", "inference_worker.probe", kind]
    return subprocess.run(command, env=worker.env, capture_output=True, check=False).returncode


def test_the_worker_probes_follow_its_lifecycle(isolated):
    worker = isolated.start_worker(concurrency=1)
    wait_until(lambda: _probe(worker, "ready") == 0, 30, worker)
    assert _probe(worker, "live") == 0
    worker.signal(signal.SIGTERM)
    worker.popen.wait(60)
    assert _probe(worker, "ready") == 1
    assert _probe(worker, "live") == 1


def test_a_worker_sent_sigterm_shuts_down_warm_and_loses_nothing(isolated, infra, keys, models, db):
    stack = isolated
    worker = stack.start_worker(concurrency=2)
    stack.start_api(workers=1)
    model = models["binary"]
    rows = model.rows[20:50]
    worker.signal(signal.SIGSTOP)
    pool, futures = _fire(stack, keys.full, rows)
    _wait_for_queued(infra.broker_url, f"{stack.prefix}.predict")
    # SIGTERM is what Kubernetes sends on scale-down; it takes effect once the process runs again.
    worker.signal(signal.SIGTERM)
    worker.signal(signal.SIGCONT)
    assert worker.popen.wait(60) == 0, worker.tail()
    assert "Warm shutdown" in worker.log.read_text()
    stack.start_worker(concurrency=2)
    _assert_all_answered(futures, model, rows, db)
    pool.shutdown()
