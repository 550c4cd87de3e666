"""Poison messages go to the dead-letter queue, are counted by reason, and never block the queue.

Each kind of poison is published straight onto the predict and jobs queues
of a stack of its own (raw kombu bodies and Celery-shaped messages), between
good requests sent through the api. The good requests must all be answered
promptly and correctly, the dead-letter queue must grow by exactly the
number of poison messages, and ``inference_worker_dead_lettered_total`` must
count each one under its reason.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import requests
from celery import Celery
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from inference_common.broker import celery_config
from inference_common.contract import JOB_CHUNK_TASK, PREDICT_TASK, Queues, encode_rows
from support.polling import poll
from support.stack import Stack, manage, queue_depth

#: A good sync request must come back within this, poison or not in its batch.
PROMPT_S = 10.0
DEAD_LETTERED = "inference_worker_dead_lettered_total"


@pytest.fixture(scope="module")
def poison_stack(infra, models, run_id) -> Iterator[Stack]:
    """An api + worker with their own queue prefix: the dead-letter queue and metrics are ours alone."""
    stack = Stack(env=infra.env, logs=infra.logs, prefix=f"poison-{run_id}")
    try:
        # One retry keeps the load-failure case (retried, then dead-lettered) short.
        stack.start_worker(concurrency=2, WORKER_MAX_RETRIES="1")
        stack.start_api(workers=1)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def broken_model(infra, models, db, tmp_path_factory) -> tuple[int, str, str]:
    """A registered version whose artifact was corrupted after registration: (id, name, version)."""
    name = f"poisonbroken{uuid.uuid4().hex[:8]}"
    path = tmp_path_factory.mktemp("poison") / "broken.json"
    # A unique attribute gives the artifact its own sha256: no other version shares the file.
    booster = models["regression"].booster.copy()
    booster.set_attr(purpose=f"broken-{name}")
    booster.save_model(path)
    version = manage(
        infra.env, "register_model", "--name", name, "--file", str(path), "--stage", "production"
    )
    row = db.execute("SELECT id, artifact_path FROM model_versions WHERE name = %s", (name,)).fetchone()
    (infra.model_store / row[1]).write_text("{ not a model")
    return int(row[0]), name, version


def _version_id(db, name: str, version: str) -> int:
    query = "SELECT id FROM model_versions WHERE name = %s AND version = %s"
    return int(db.execute(query, (name, version)).fetchone()[0])


def _payload(model_version_id: int, rows: list[list[float]], name: str = "binary", **extra: Any) -> dict:
    """A message body that passes the contract (the worker decides the rest)."""
    return {
        "model": name,
        "version": "1",
        "model_version_id": model_version_id,
        "n_features": max(1, len(rows[0])),
        "rows": rows,
        "enqueued_at": time.time(),
        **extra,
    }


def _sync_request(model_version_id: int, rows: list[list[float]], name: str = "binary") -> dict:
    request_id = uuid.uuid4().hex
    return {"request": _payload(model_version_id, rows, name, request_id=request_id, protocol="v1")}


def _chunk(model_version_id: int, rows: list[list[float]], name: str = "binary") -> dict:
    extra = {"job_id": str(uuid.uuid4()), "chunk_index": 0, "row_offset": 0}
    return {"chunk": _payload(model_version_id, rows, name, **extra)}


def _encoded(message: dict, rows_b64: str) -> dict:
    """A :func:`_sync_request` or :func:`_chunk` with its rows given as ``rows_b64`` instead."""
    [(key, body)] = message.items()
    return {key: {**{name: value for name, value in body.items() if name != "rows"}, "rows_b64": rows_b64}}


def _dead_lettered(url: str) -> Counter[tuple[str, str]]:
    """(task, reason) -> count, scraped from the worker's /metrics."""
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(requests.get(url, timeout=5).text):
        for sample in family.samples:
            if sample.name == DEAD_LETTERED:
                counts[(sample.labels["task"], sample.labels["reason"])] += int(sample.value)
    return counts


def test_poison_messages_are_dead_lettered_counted_and_never_block_good_requests(
    poison_stack, infra, models, db, broken_model, keys
):
    queues = Queues(poison_stack.prefix)
    good_id = _version_id(db, "binary", models["binary"].version)
    broken_id, broken_name, _ = broken_model
    width = models["binary"].rows.shape[1]
    unknown_id = 2_000_000_000
    fine_row = [0.5] * width

    sender = Celery("poison-sender", set_as_current=False)
    sender.conf.update(celery_config(infra.broker_url, queues))

    def celery_shaped(task: str, queue: str, kwargs: dict) -> Callable[[], None]:
        return lambda: sender.send_task(task, kwargs=kwargs, queue=queue, task_id=uuid.uuid4().hex)

    def raw(queue: str, body: bytes, content_type: str, headers: dict | None = None) -> Callable[[], None]:
        def publish() -> None:
            with Connection(infra.broker_url) as conn:
                producer = conn.Producer()
                producer.publish(
                    body,
                    exchange="",
                    routing_key=queue,
                    content_type=content_type,
                    content_encoding="utf-8",
                    headers=headers or {},
                    delivery_mode=2,
                )

        return publish

    # (what is published, the (task, reason) it must be counted under)
    poison: list[tuple[Callable[[], None], tuple[str, str]]] = [
        (raw(queues.predict, b"\x00\xffnot json at all", "application/json"), ("unknown", "undecodable")),
        (raw(queues.predict, b'{"hello": "world"}', "application/json"), ("unknown", "undecodable")),
        (
            raw(queues.predict, b"{{{", "application/json", {"task": PREDICT_TASK, "id": uuid.uuid4().hex}),
            (PREDICT_TASK, "undecodable"),
        ),
        (celery_shaped(PREDICT_TASK, queues.predict, {"request": {"bogus": 1}}), (PREDICT_TASK, "malformed")),
        (
            celery_shaped(PREDICT_TASK, queues.predict, _sync_request(unknown_id, [fine_row])),
            (PREDICT_TASK, "unknown_model"),
        ),
        (
            celery_shaped(PREDICT_TASK, queues.predict, _sync_request(broken_id, [fine_row], broken_name)),
            (PREDICT_TASK, "load_failed"),
        ),
        (
            celery_shaped(PREDICT_TASK, queues.predict, _sync_request(good_id, [[0.5, 0.5, 0.5]])),
            (PREDICT_TASK, "bad_shape"),
        ),
        (celery_shaped("inference.no_such_task", queues.predict, {}), ("unknown", "unknown_task")),
        (
            celery_shaped(JOB_CHUNK_TASK, queues.jobs, {"chunk": {"rows": "no"}}),
            (JOB_CHUNK_TASK, "malformed"),
        ),
        (
            celery_shaped(JOB_CHUNK_TASK, queues.jobs, _chunk(unknown_id, [fine_row])),
            (JOB_CHUNK_TASK, "unknown_model"),
        ),
        (
            celery_shaped(JOB_CHUNK_TASK, queues.jobs, _chunk(broken_id, [fine_row], broken_name)),
            (JOB_CHUNK_TASK, "load_failed"),
        ),
        (
            celery_shaped(JOB_CHUNK_TASK, queues.jobs, _chunk(good_id, [[0.5, 0.5]])),
            (JOB_CHUNK_TASK, "bad_shape"),
        ),
        # The compact encoding the api and the web publish (rows_b64): a body that is not
        # base64 float32 rows is malformed; well-formed rows of the wrong width are a bad shape.
        (
            celery_shaped(
                JOB_CHUNK_TASK, queues.jobs, _encoded(_chunk(good_id, [fine_row]), "bm90IGZsb2F0cw==")
            ),
            (JOB_CHUNK_TASK, "malformed"),
        ),
        (
            celery_shaped(
                JOB_CHUNK_TASK,
                queues.jobs,
                _encoded(_chunk(good_id, [[0.5, 0.5]]), encode_rows(np.ones((3, 2)))),
            ),
            (JOB_CHUNK_TASK, "bad_shape"),
        ),
        (
            celery_shaped(
                PREDICT_TASK, queues.predict, _encoded(_sync_request(good_id, [fine_row]), "bm90IGZsb2F0cw==")
            ),
            (PREDICT_TASK, "malformed"),
        ),
        (
            celery_shaped(
                PREDICT_TASK,
                queues.predict,
                _encoded(_sync_request(good_id, [[0.5, 0.5]]), encode_rows(np.ones((3, 2)))),
            ),
            (PREDICT_TASK, "bad_shape"),
        ),
    ]
    dead_before = queue_depth(infra.broker_url, queues.dead_letter)
    metrics_before = _dead_lettered(poison_stack.worker_metrics_url)

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {keys.full}"
    model = models["binary"]
    jobs: list[tuple[str, np.ndarray]] = []
    for index, (publish, _) in enumerate(poison):
        publish()
        # A good sync request right behind each poison message: same queue, often the same batch.
        rows = model.rows[index : index + 3]
        started = time.monotonic()
        response = session.post(
            f"{poison_stack.url}/v1/models/binary:predict", json={"instances": rows.tolist()}, timeout=30
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert elapsed < PROMPT_S, f"a good request took {elapsed:.1f}s behind poison message {index}"
        got = np.asarray(response.json()["predictions"], dtype=np.float32)
        np.testing.assert_array_equal(got, model.expected(rows))
        if index % 3 == 0:
            job_rows = model.rows[index : index + 20]
            accepted = session.post(
                f"{poison_stack.url}/v1/models/binary/jobs", json={"instances": job_rows.tolist()}, timeout=30
            )
            assert accepted.status_code == 202, accepted.text
            jobs.append((accepted.headers["Location"], job_rows))

    for location, job_rows in jobs:
        done = poll(
            lambda location=location: session.get(f"{poison_stack.url}{location}", timeout=10).json(),
            lambda body: body["status"] in ("succeeded", "failed"),
            timeout=60,
        )
        assert done["status"] == "succeeded", done
        got = np.asarray(done["predictions"], dtype=np.float32)
        np.testing.assert_array_equal(got, model.expected(job_rows))

    expected = Counter(reason for _, reason in poison)
    # The retried load failure is the slowest: one back-off, then the reject.
    poll(
        lambda: queue_depth(infra.broker_url, queues.dead_letter),
        lambda depth: depth >= dead_before + len(poison),
        timeout=60,
    )
    after = poll(
        lambda: _dead_lettered(poison_stack.worker_metrics_url),
        lambda counts: sum((counts - metrics_before).values()) >= len(poison),
        timeout=30,
    )
    assert queue_depth(infra.broker_url, queues.dead_letter) == dead_before + len(poison)
    assert after - metrics_before == expected
    # The work queues are drained: nothing is stuck behind the poison.
    assert queue_depth(infra.broker_url, queues.predict) == 0
    assert queue_depth(infra.broker_url, queues.jobs) == 0
