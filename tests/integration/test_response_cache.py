"""The response cache on the real stack: gunicorn api, Celery worker, RabbitMQ, PostgreSQL and Redis.

The stack of this module has its own queue prefix and Redis key prefix, a
model name of its own with the cache turned on by the real management
command, and promotions made by the real commands (which bump the cache
generation in the same transaction as the stage change).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.polling import poll
from support.stack import Stack, manage, queue_depth

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NAME = "cached"
MAX_ENTRIES = 40


@pytest.fixture(scope="module")
def key_prefix(run_id: str) -> Iterator[str]:
    """This run's Redis key prefix; its keys are deleted after the module."""
    prefix = f"itest-rc-{run_id}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    """A plain client to look at what the api stored."""
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture(scope="module")
def versions(register_version, train_binary, models, infra):
    """Production v1 (20 trees) and staging v2 (3 trees) of NAME, with the cache on."""
    rows = models["binary"].rows
    first = register_version(NAME, train_binary(20), rows, "production")
    second = register_version(NAME, train_binary(3), rows)
    line = manage(
        infra.env, "set_response_cache", "--name", NAME, "--ttl-s", "600", "--max-entries", str(MAX_ENTRIES)
    )
    assert line.startswith(f"{NAME}: response cache on"), line
    return first, second


@pytest.fixture(scope="module")
def cache_stack(infra, run_id: str, key_prefix: str, versions) -> Iterator[Stack]:
    """A worker and an api with the response cache on (a miss without a worker gives up after 5 s)."""
    stack = Stack(env=infra.env, logs=infra.logs, prefix=f"cache-{run_id}")
    try:
        stack.start_worker(concurrency=1)
        stack.start_api(
            workers=2, CACHE_REDIS_URL=REDIS_URL, CACHE_KEY_PREFIX=key_prefix, API_SYNC_TIMEOUT_S="5"
        )
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def client(cache_stack: Stack, keys) -> requests.Session:
    """A session against the cache stack's api."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {keys.full}"
    return session


def _v1(client: requests.Session, stack: Stack, rows: np.ndarray) -> requests.Response:
    response = client.post(
        f"{stack.url}/v1/models/{NAME}:predict", json={"instances": rows.tolist()}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response


def _v2(client: requests.Session, stack: Stack, rows: np.ndarray) -> requests.Response:
    tensor = {"name": "x", "shape": list(rows.shape), "datatype": "FP32", "data": rows.reshape(-1).tolist()}
    response = client.post(f"{stack.url}/v2/models/{NAME}/infer", json={"inputs": [tensor]}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def _records(db: psycopg.Connection, request_ids: list[str]) -> dict[str, tuple]:
    """request_id -> (cache_hit, version, route, inputs_digest, outputs) of the rows written so far."""
    rows = db.execute(
        """SELECT r.request_id, r.cache_hit, v.version, r.route, r.inputs_digest, r.outputs
           FROM prediction_records r JOIN model_versions v ON v.id = r.model_version_id
           WHERE r.request_id = ANY(%s)""",
        (request_ids,),
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _entries(client: redis.Redis, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{prefix}:{{{NAME}}}:g[0-9]*", count=1000))


def test_a_repeated_input_is_a_miss_then_a_hit_with_the_models_own_answer(
    client, cache_stack, versions, db
) -> None:
    first, _ = versions
    rows = first.rows[:3]
    expected = first.expected(rows)

    miss = _v1(client, cache_stack, rows)
    hit = _v1(client, cache_stack, rows)
    # A v2 body with the same numbers is the same input.
    hit_v2 = _v2(client, cache_stack, rows)

    assert [miss.headers["X-Cache"], hit.headers["X-Cache"], hit_v2.headers["X-Cache"]] == [
        "miss",
        "hit",
        "hit",
    ]
    assert hit.content == miss.content, "a hit answers exactly what the miss answered"
    np.testing.assert_array_equal(np.asarray(miss.json()["predictions"], dtype=np.float32), expected)
    assert hit_v2.json()["outputs"][0]["data"] == miss.json()["predictions"]
    assert hit.headers["X-Model-Version"] == first.version
    ids = [response.headers["X-Request-ID"] for response in (miss, hit, hit_v2)]
    assert len(set(ids)) == 3
    records = poll(lambda: _records(db, ids), lambda found: len(found) == 3, 30)
    assert [records[request_id][:3] for request_id in ids] == [
        (False, first.version, "production"),
        (True, first.version, "production"),
        (True, first.version, "production"),
    ]
    # The api's digest of the inputs is the worker's, and the outputs are the same.
    assert len({records[request_id][3] for request_id in ids}) == 1
    assert records[ids[1]][4] == records[ids[0]][4]


def test_a_promotion_and_a_roll_back_invalidate_the_cached_answers(
    client, cache_stack, versions, infra, redis_client, key_prefix
) -> None:
    first, second = versions
    rows = first.rows[10:12]
    _v1(client, cache_stack, rows)
    assert _v1(client, cache_stack, rows).headers["X-Cache"] == "hit"

    manage(infra.env, "set_model_stage", "--name", NAME, "--version", second.version, "--stage", "production")
    after_promotion = _v1(client, cache_stack, rows)
    again = _v1(client, cache_stack, rows)
    manage(infra.env, "rollback_model", "--name", NAME)
    after_roll_back = _v1(client, cache_stack, rows)

    assert (after_promotion.headers["X-Cache"], after_promotion.headers["X-Model-Version"]) == (
        "miss",
        second.version,
    )
    np.testing.assert_array_equal(
        np.asarray(after_promotion.json()["predictions"], dtype=np.float32), second.expected(rows)
    )
    assert again.headers["X-Cache"] == "hit"
    # v1's answer was cached before the promotion; the roll back must not serve it from the cache.
    assert (after_roll_back.headers["X-Cache"], after_roll_back.headers["X-Model-Version"]) == (
        "miss",
        first.version,
    )
    np.testing.assert_array_equal(
        np.asarray(after_roll_back.json()["predictions"], dtype=np.float32), first.expected(rows)
    )
    # Only the current generation's entries are left in Redis.
    generation = int(redis_client.get(f"{key_prefix}:{{{NAME}}}:generation"))
    assert {key.split(b":")[2] for key in _entries(redis_client, key_prefix)} == {f"g{generation}".encode()}


def test_a_model_name_never_holds_more_than_its_max_entries(
    client, cache_stack, versions, redis_client, key_prefix
) -> None:
    first, _ = versions
    for index in range(MAX_ENTRIES + 15):
        _v1(client, cache_stack, first.rows[index : index + 1] + 1000.0)
    assert len(_entries(redis_client, key_prefix)) == MAX_ENTRIES
    assert redis_client.zcard(f"{key_prefix}:{{{NAME}}}:index") == MAX_ENTRIES


def _metric(url: str, name: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_hits_and_misses_are_counted_on_metrics(client, cache_stack, versions) -> None:
    first, _ = versions
    rows = first.rows[100:101] * 3.0
    hits = _metric(cache_stack.url, "inference_api_response_cache_hits_total")
    misses = _metric(cache_stack.url, "inference_api_response_cache_misses_total")
    _v1(client, cache_stack, rows)
    _v1(client, cache_stack, rows)
    assert _metric(cache_stack.url, "inference_api_response_cache_hits_total") == hits + 1
    assert _metric(cache_stack.url, "inference_api_response_cache_misses_total") == misses + 1


def test_a_hit_is_answered_with_every_worker_stopped_and_publishes_nothing(
    client, cache_stack, versions, infra, db
) -> None:
    first, _ = versions
    rows = first.rows[200:204]
    expected = _v1(client, cache_stack, rows).content
    cache_stack.workers[0].stop()
    try:
        queue = f"{cache_stack.prefix}.predict"
        answers = [_v1(client, cache_stack, rows) for _ in range(5)]
        assert all(answer.headers["X-Cache"] == "hit" for answer in answers)
        assert all(answer.content == expected for answer in answers)
        assert queue_depth(infra.broker_url, queue) == 0, "no hit reached the queue"
        ids = [answer.headers["X-Request-ID"] for answer in answers]
        records = poll(lambda: _records(db, ids), lambda found: len(found) == 5, 30)
        assert all(record[0] for record in records.values()), "the api wrote the audit rows itself"
    finally:
        # A new worker (with its own log) for the tests after this one.
        cache_stack.start_worker(concurrency=1)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_redis_degrades_to_misses_with_correct_answers(
    client, cache_stack, versions, infra, keys
) -> None:
    first, _ = versions
    # A second api on the same queues whose Redis does not exist.
    other = Stack(env=infra.env, logs=infra.logs, prefix=cache_stack.prefix)
    other.start_api(workers=1, CACHE_REDIS_URL=f"redis://127.0.0.1:{_unused_port()}/0")
    try:
        rows = first.rows[300:302]
        answers = [_v1(client, other, rows) for _ in range(3)]
        assert [answer.headers["X-Cache"] for answer in answers] == ["miss"] * 3
        for answer in answers:
            np.testing.assert_array_equal(
                np.asarray(answer.json()["predictions"], dtype=np.float32), first.expected(rows)
            )
        assert _metric(other.url, "inference_api_response_cache_errors_total") >= 3
    finally:
        other.stop()
