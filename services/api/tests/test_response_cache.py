"""The response cache against the real Redis on 127.0.0.1:6379 (``TEST_REDIS_URL``).

Every test writes under a key prefix of its own and deletes its keys after.
The api-level tests run the app from its factory on SQLite and the file
broker with no worker at all: a hit must answer anyway, a miss times out.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis
from flask import Flask
from kombu import Connection
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, update

from inference_api import create_app
from inference_api.cache_audit import HitAuditWriter
from inference_api.config import ApiSettings
from inference_api.registry import Registry
from inference_api.response_cache import Keys, Lookup, ResponseCache, decode_answer, encode_answer
from inference_common.broker import task_queues, transport_options
from inference_common.contract import PredictReply, Queues
from inference_common.digests import array_digest
from inference_common.schema import prediction_records, response_cache_policies
from inference_common.settings import ConfigError

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROWS = [[5.1, 3.5, 1.4, 0.2]]
#: What a worker would answer for ROWS on the iris model (3 class probabilities).
OUTPUTS = [0.25, 0.5, 0.25]


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test-rc-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def client_redis() -> Iterator[redis.Redis]:
    """A plain client to look at what the cache wrote."""
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def _set_policy(
    engine: Engine, name: str = "iris", *, ttl_s: int = 60, max_entries: int = 100, generation: int = 0
) -> None:
    values = {"enabled": True, "ttl_s": ttl_s, "max_entries": max_entries, "generation": generation}
    with engine.begin() as conn:
        found = conn.execute(
            update(response_cache_policies)
            .where(response_cache_policies.c.model_name == name)
            .values(**values)
        ).rowcount
        if not found:
            conn.execute(response_cache_policies.insert().values(model_name=name, **values))


def _cache(
    engine: Engine, prefix: str, url: str = REDIS_URL, max_entry_bytes: int = 1 << 20
) -> ResponseCache:
    writer = HitAuditWriter(engine, buffer_rows=100, outputs_max_rows=100)
    return ResponseCache(
        Registry(engine, 0.0),
        writer,
        redis_url=url,
        key_prefix=prefix,
        timeout_s=0.1,
        max_entry_bytes=max_entry_bytes,
    )


def _reply(outputs: list[float] = OUTPUTS, rows: int = 1) -> PredictReply:
    return PredictReply(request_id="r", outputs=outputs * rows, shape=[rows, 3], device="cpu", batch_size=1)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _entry_keys(client: redis.Redis, prefix: str) -> set[bytes]:
    return {key for key in client.scan_iter(match=f"{prefix}:*:g[0-9]*", count=1000)}


# -- keys and values ---------------------------------------------------------------
def test_the_same_numbers_give_the_same_key_whatever_their_dtype(engine, prefix):
    _set_policy(engine)
    cache = _cache(engine, prefix)
    route = cache._registry.route("iris")
    as_ints = cache.lookup(route, np.array([[5, 3, 1, 0]], dtype=np.int64))
    as_floats = cache.lookup(route, np.array([[5.0, 3.0, 1.0, 0.0]], dtype=np.float64))
    as_float32 = cache.lookup(route, np.array([[5.0, 3.0, 1.0, 0.0]], dtype=np.float32))
    other = cache.lookup(route, np.array([[5.0, 3.0, 1.0, 0.5]]))
    assert as_ints.key == as_floats.key == as_float32.key != other.key
    # The digest in the key is the audit row's inputs digest.
    assert as_ints.inputs_digest == array_digest(np.array([[5, 3, 1, 0]], dtype=np.float32))


def test_the_key_names_the_generation_the_version_and_the_shape():
    keys = Keys("p", "iris")
    base = keys.entry(3, 7, (2, 4), "d" * 64)
    assert base == f"p:{{iris}}:g3:v7:2x4:{'d' * 64}"
    assert len({base, keys.entry(4, 7, (2, 4), "d" * 64), keys.entry(3, 8, (2, 4), "d" * 64)}) == 3
    # One hash tag per model name: a Lua script may touch all its keys in Redis Cluster.
    assert {keys.index, keys.generation} == {"p:{iris}:index", "p:{iris}:generation"}


def test_float32_outputs_are_stored_as_float32_and_decode_exactly():
    outputs = np.array([0.1, 0.7, 0.2], dtype=np.float32).tolist()
    value = encode_answer(outputs, [1, 3], "cpu")
    decoded, header = decode_answer(value)
    assert header == {"shape": [1, 3], "dtype": "<f4", "device": "cpu"}
    assert decoded.tolist() == outputs
    assert len(value.partition(b"\n")[2]) == 3 * 4


def test_outputs_float32_cannot_hold_are_stored_as_float64():
    outputs = [0.1, 1e-300]
    decoded, header = decode_answer(encode_answer(outputs, [2], ""))
    assert header["dtype"] == "<f8"
    assert decoded.tolist() == outputs


def test_a_value_whose_size_disagrees_with_its_shape_is_refused():
    value = encode_answer([1.0, 2.0], [3], "cpu")
    with pytest.raises(ValueError, match="shape"):
        decode_answer(value)


# -- lookups and stores on the real Redis ------------------------------------------------
def test_a_stored_answer_is_found_with_the_same_outputs_and_shape(engine, prefix):
    _set_policy(engine)
    cache = _cache(engine, prefix)
    route = cache._registry.route("iris")
    miss = cache.lookup(route, np.array(ROWS * 2))
    assert miss.reply is None
    assert miss.policy is not None
    reply = _reply(np.array([0.1, 0.7, 0.2], dtype=np.float32).tolist(), rows=2)
    cache.store(miss, reply)
    hit = cache.lookup(route, np.array(ROWS * 2))
    assert hit.reply is not None
    assert (hit.reply.outputs, hit.reply.shape) == (reply.outputs, reply.shape)
    assert hit.device == "cpu"


def test_it_is_off_without_a_policy_or_with_a_disabled_one(engine, prefix, client_redis):
    cache = _cache(engine, prefix)
    route = cache._registry.route("iris")
    lookup = cache.lookup(route, np.array(ROWS))
    assert lookup == Lookup(route.model)
    cache.store(lookup, _reply())
    _set_policy(engine)
    with engine.begin() as conn:
        conn.execute(update(response_cache_policies).values(enabled=False))
    lookup = cache.lookup(route, np.array(ROWS))
    assert lookup.policy is None
    cache.store(lookup, _reply())
    assert not list(client_redis.scan_iter(match=f"{prefix}:*"))


def test_an_entry_expires_after_the_policy_ttl(engine, prefix, client_redis):
    _set_policy(engine, ttl_s=1)
    cache = _cache(engine, prefix)
    route = cache._registry.route("iris")
    cache.store(cache.lookup(route, np.array(ROWS)), _reply())
    [key] = _entry_keys(client_redis, prefix)
    assert 0 < client_redis.pttl(key) <= 1000
    assert cache.lookup(route, np.array(ROWS)).reply is not None
    deadline = time.monotonic() + 5
    while cache.lookup(route, np.array(ROWS)).reply is not None:
        assert time.monotonic() < deadline, "the entry outlived its ttl"
        time.sleep(0.05)


def test_a_model_name_never_holds_more_than_max_entries(engine, prefix, client_redis):
    _set_policy(engine, max_entries=5)
    cache = _cache(engine, prefix)
    route = cache._registry.route("iris")
    inputs = [np.array([[float(i), 0.0, 0.0, 0.0]]) for i in range(20)]
    for rows in inputs:
        cache.store(cache.lookup(route, rows), _reply())
        assert len(_entry_keys(client_redis, prefix)) <= 5
    keys = Keys(prefix, "iris")
    assert client_redis.zcard(keys.index) == 5
    assert len(_entry_keys(client_redis, prefix)) == 5
    # The entries that expire first (the oldest) made room.
    found = [cache.lookup(route, rows).reply is not None for rows in inputs]
    assert found == [False] * 15 + [True] * 5


def test_a_new_generation_misses_and_its_first_store_deletes_the_old_entries(engine, prefix, client_redis):
    _set_policy(engine, generation=1)
    cache = _cache(engine, prefix)
    route = cache._registry.route("iris")
    for i in range(3):
        rows = np.array([[float(i), 1.0, 2.0, 3.0]])
        cache.store(cache.lookup(route, rows), _reply())
    stale = cache.lookup(route, np.array(ROWS))
    _set_policy(engine, generation=2)  # what a promotion does in the web tier
    assert cache.lookup(route, np.array([[0.0, 1.0, 2.0, 3.0]])).reply is None
    cache.store(cache.lookup(route, np.array(ROWS)), _reply())
    remaining = _entry_keys(client_redis, prefix)
    [survivor] = remaining
    assert b":g2:" in survivor
    assert client_redis.get(Keys(prefix, "iris").generation) == b"2"
    # A process that has not seen the new generation yet stores nothing.
    before = _sample("inference_api_response_cache_store_skips_total", reason="outdated_generation")
    cache.store(stale, _reply())
    assert (
        _sample("inference_api_response_cache_store_skips_total", reason="outdated_generation") == before + 1
    )
    assert _entry_keys(client_redis, prefix) == remaining


def test_an_answer_larger_than_the_entry_limit_is_not_stored(engine, prefix, client_redis):
    _set_policy(engine)
    cache = _cache(engine, prefix, max_entry_bytes=100)
    route = cache._registry.route("iris")
    before = _sample("inference_api_response_cache_store_skips_total", reason="too_large")
    cache.store(cache.lookup(route, np.array(ROWS * 10)), _reply(rows=10))
    assert _sample("inference_api_response_cache_store_skips_total", reason="too_large") == before + 1
    assert not _entry_keys(client_redis, prefix)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_redis_is_a_fast_miss_never_an_error(engine, prefix):
    _set_policy(engine)
    cache = _cache(engine, prefix, url=f"redis://127.0.0.1:{_unused_port()}/0")
    route = cache._registry.route("iris")
    before = _sample("inference_api_response_cache_errors_total", operation="lookup")
    started = time.perf_counter()
    for _ in range(20):
        lookup = cache.lookup(route, np.array(ROWS))
        assert lookup.reply is None
        assert lookup.policy is not None
        cache.store(lookup, _reply())
    assert time.perf_counter() - started < 1.0
    assert _sample("inference_api_response_cache_errors_total", operation="lookup") == before + 20


def test_a_redis_that_never_answers_costs_one_timeout_then_nothing(engine, prefix):
    _set_policy(engine)
    with socket.socket() as silent:
        # Accepts connections (the kernel's backlog) but never answers a command.
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        cache = _cache(engine, prefix, url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        route = cache._registry.route("iris")
        started = time.perf_counter()
        assert cache.lookup(route, np.array(ROWS)).reply is None
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(20):
            assert cache.lookup(route, np.array(ROWS)).reply is None
        later = time.perf_counter() - started
    assert 0.05 <= first < 0.5, "one socket timeout (0.1 s)"
    assert later < 0.1, "while Redis is marked down, lookups skip it"


# -- through the app: a hit never reaches the queue ----------------------------------------
@pytest.fixture
def cached_app(engine, tmp_path, prefix) -> Iterator[Flask]:
    """An api with the cache on and no worker behind it (a miss times out after 0.2 s)."""
    app = create_app(
        {
            "database_url": str(engine.url),
            "broker_url": f"filesystem://{tmp_path}/broker",
            "cache_ttl_s": 0.0,
            "sync_timeout_s": 0.2,
            "queues": Queues("cache-test"),
            "cache_redis_url": REDIS_URL,
            "cache_key_prefix": prefix,
        }
    )
    yield app
    app.extensions["inference"].response_cache.close()
    app.extensions["inference"].dispatcher.close()


def _queued(tmp_path) -> int:
    """Predict messages waiting on the app's file broker."""
    url = f"filesystem://{tmp_path}/broker"
    with Connection("filesystem://", transport_options=transport_options(url)) as conn:
        queue = task_queues(Queues("cache-test"))[0](conn.default_channel)
        queue.declare()
        return queue.queue_declare(passive=True).message_count


def _v1(app: Flask, key: str, rows: list[list[float]]):
    return app.test_client().post(
        "/v1/models/iris:predict", json={"instances": rows}, headers={"Authorization": f"Bearer {key}"}
    )


def _v2(app: Flask, key: str, rows: list[list[float]]):
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": [len(rows), 4],
                "datatype": "FP32",
                "data": [value for row in rows for value in row],
            }
        ]
    }
    return app.test_client().post(
        "/v2/models/iris/infer", json=body, headers={"Authorization": f"Bearer {key}"}
    )


def test_a_hit_is_answered_without_a_worker_and_audited_as_a_cache_hit(cached_app, engine, keys, tmp_path):
    _set_policy(engine)
    cache = cached_app.extensions["inference"].response_cache
    route = cached_app.extensions["inference"].registry.route("iris")
    cache.store(cache.lookup(route, np.array(ROWS)), _reply())
    misses = _sample("inference_api_response_cache_misses_total", model="iris")

    v1, v2 = _v1(cached_app, keys.full, ROWS), _v2(cached_app, keys.full, ROWS)

    assert (v1.status_code, v2.status_code) == (200, 200)
    assert v1.headers["X-Cache"] == v2.headers["X-Cache"] == "hit"
    assert v1.get_json()["predictions"] == [OUTPUTS]
    assert v2.get_json()["outputs"][0] == {
        "name": "predict",
        "datatype": "FP32",
        "shape": [1, 3],
        "data": OUTPUTS,
    }
    assert _sample("inference_api_response_cache_misses_total", model="iris") == misses
    assert _queued(tmp_path) == 0, "a hit publishes nothing"
    assert cache._audit.flush()
    with engine.connect() as conn:
        rows = conn.execute(
            select(prediction_records).where(
                prediction_records.c.request_id.in_([v1.headers["X-Request-ID"], v2.headers["X-Request-ID"]])
            )
        ).all()
    assert {(row.protocol, row.route, row.cache_hit, row.status) for row in rows} == {
        ("v1", "production", True, "ok"),
        ("v2", "production", True, "ok"),
    }
    for row in rows:
        assert row.inputs_digest == array_digest(np.array(ROWS))
        assert row.outputs_digest == array_digest(np.array([OUTPUTS]))
        assert row.outputs == [OUTPUTS]
        assert (row.n_rows, row.batch_size, row.predict_ms, row.device) == (1, 0, 0.0, "cpu")


def test_a_miss_is_published_and_says_so(cached_app, engine, keys, tmp_path):
    _set_policy(engine)
    response = _v1(cached_app, keys.full, [[9.0, 9.0, 9.0, 9.0]])
    assert response.status_code == 504  # published, and no worker answered
    assert response.headers["X-Cache"] == "miss"
    assert _queued(tmp_path) == 1


def test_a_model_without_a_policy_gets_no_cache_header(cached_app, keys):
    response = _v1(cached_app, keys.full, ROWS)
    assert response.status_code == 504
    assert "X-Cache" not in response.headers


# -- settings --------------------------------------------------------------------------
def test_it_is_off_unless_a_redis_url_is_set():
    settings = ApiSettings.from_env({})
    assert settings.cache_redis_url == ""
    assert ApiSettings.from_env({"CACHE_REDIS_URL": "redis://cache:6379/2"}).cache_redis_url == (
        "redis://cache:6379/2"
    )


def test_a_url_that_is_not_redis_stops_the_api_without_printing_it():
    with pytest.raises(ConfigError, match="CACHE_REDIS_URL must start with redis://") as raised:
        ApiSettings.from_env({"CACHE_REDIS_URL": "http://user:s3cret@cache:6379"})
    assert "s3cret" not in str(raised.value)
