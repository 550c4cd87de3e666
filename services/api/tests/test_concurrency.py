"""The in-flight bound: sync requests over it are refused at once, never queued.

No worker consumes the file broker here, so every sync request that takes a
slot waits its full ``sync_timeout_s`` and then gets a 504: a slow path that
holds slots for as long as the test needs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from flask import Flask

from inference_api import create_app
from inference_api.concurrency import REASON_GLOBAL, REASON_KEY, InflightLimiter
from inference_api.config import ApiSettings

HOLD_S = 2.0
ROW = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
V2_BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- the limiter on its own ----------------------------------------------------------
def test_it_refuses_a_key_over_its_own_cap_before_the_global_one():
    limiter = InflightLimiter(max_inflight=3, max_per_key=2)
    assert limiter.try_acquire("a") is None
    assert limiter.try_acquire("a") is None
    assert limiter.try_acquire("a") == REASON_KEY
    assert limiter.try_acquire("b") is None
    assert limiter.try_acquire("c") == REASON_GLOBAL
    # A key at its cap hears about its own cap even when the process is full too.
    assert limiter.try_acquire("a") == REASON_KEY
    assert (limiter.inflight, limiter.held_by("a"), limiter.held_by("b")) == (3, 2, 1)


def test_it_frees_slots_on_release_and_forgets_idle_keys():
    limiter = InflightLimiter(max_inflight=1, max_per_key=1)
    assert limiter.try_acquire("a") is None
    limiter.release("a")
    assert limiter.inflight == 0
    assert limiter.held_by("a") == 0
    assert limiter.try_acquire("b") is None
    with pytest.raises(RuntimeError, match="release without acquire"):
        limiter.release("a")


def test_it_never_lets_more_than_the_bound_in_under_contention():
    limiter = InflightLimiter(max_inflight=5, max_per_key=5)
    peak = 0
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker(i: int) -> None:
        nonlocal peak
        barrier.wait()
        for _ in range(200):
            key = f"k{i % 8}"
            if limiter.try_acquire(key) is None:
                with lock:
                    peak = max(peak, limiter.inflight)
                limiter.release(key)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= peak <= 5
    assert limiter.inflight == 0


def test_it_refuses_bounds_below_one():
    with pytest.raises(ValueError):
        InflightLimiter(max_inflight=0, max_per_key=1)


# -- settings ------------------------------------------------------------------------
def test_the_default_bound_keeps_two_threads_free_and_the_key_cap_is_off():
    settings = ApiSettings.from_env({"API_THREADS": "32"})
    assert (settings.max_inflight, settings.max_inflight_per_key) == (30, 30)
    tiny = ApiSettings.from_env({"API_THREADS": "1"})
    assert tiny.max_inflight == 1
    explicit = ApiSettings.from_env({"API_MAX_INFLIGHT": "8", "API_MAX_INFLIGHT_PER_KEY": "4"})
    assert (explicit.max_inflight, explicit.max_inflight_per_key) == (8, 4)


def test_it_refuses_a_bound_that_is_not_a_positive_integer():
    from inference_common.settings import ConfigError

    with pytest.raises(ConfigError, match="API_MAX_INFLIGHT_PER_KEY"):
        ApiSettings.from_env({"API_MAX_INFLIGHT_PER_KEY": "0"})
    with pytest.raises(ConfigError, match="API_MAX_INFLIGHT"):
        ApiSettings.from_env({"API_MAX_INFLIGHT": "many"})


# -- through the app -----------------------------------------------------------------
@pytest.fixture
def bounded(engine, tmp_path) -> Iterator[Flask]:
    """The api with room for 2 sync requests, at most 1 per key, each waiting HOLD_S."""
    app = create_app(
        {
            "database_url": str(engine.url),
            "broker_url": f"filesystem://{tmp_path}/broker",
            "cache_ttl_s": 0.0,
            "sync_timeout_s": HOLD_S,
            "max_inflight": 2,
            "max_inflight_per_key": 1,
        }
    )
    yield app
    app.extensions["inference"].dispatcher.close()


def _hold(app: Flask, pool: ThreadPoolExecutor, key: str) -> Future:
    """Start a sync request that takes a slot and waits; return once it holds it."""
    limiter: InflightLimiter = app.extensions["inflight"]
    before = limiter.inflight
    client = app.test_client()
    future = pool.submit(lambda: client.post("/v1/models/iris:predict", json=ROW, headers=_auth(key)))
    deadline = time.monotonic() + HOLD_S / 2
    while limiter.inflight == before:
        assert time.monotonic() < deadline, "the request never took a slot"
        time.sleep(0.01)
    return future


def test_it_refuses_at_once_with_503_and_retry_after_when_the_process_is_full(bounded, make_key):
    # Rate-limited keys: the limiter's own Retry-After (its window reset) must not replace ours.
    first, second, third = (make_key(n, ["predict"], limit=1000) for n in ("first", "second", "third"))
    client = bounded.test_client()
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = [_hold(bounded, pool, first), _hold(bounded, pool, second)]
        started = time.monotonic()
        v1 = client.post("/v1/models/iris:predict", json=ROW, headers=_auth(third))
        v2 = client.post("/v2/models/iris/infer", json=V2_BODY, headers=_auth(third))
        elapsed = time.monotonic() - started
        # Refused without waiting for a slot: far less than the holders' wait.
        assert elapsed < HOLD_S / 2
        assert v1.status_code == 503
        assert v1.mimetype == "application/problem+json"
        assert v1.get_json()["type"].endswith("#overloaded")
        assert v1.headers["Retry-After"] == "1"
        assert v2.status_code == 503
        assert set(v2.get_json()) == {"error"}
        assert v2.headers["Retry-After"] == "1"
        # What is not a sync prediction is still answered by the threads kept free.
        assert client.get("/healthz").status_code == 200
        assert client.get("/v2/models/iris", headers=_auth(third)).status_code == 200
        # The holders were let in: they waited for a worker and timed out (no worker here).
        assert [f.result(timeout=HOLD_S * 3).status_code for f in held] == [504, 504]
    assert bounded.extensions["inflight"].inflight == 0


def test_it_refuses_a_key_over_its_share_with_429_while_other_keys_are_served(bounded, make_key):
    greedy, other = make_key("greedy", ["predict"], limit=1000), make_key("other", ["predict"])
    client = bounded.test_client()
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = _hold(bounded, pool, greedy)
        refused = client.post("/v1/models/iris:predict", json=ROW, headers=_auth(greedy))
        assert refused.status_code == 429
        assert refused.get_json()["type"].endswith("#too_many_concurrent_requests")
        assert refused.headers["Retry-After"] == "1"
        # The other key gets the remaining slot: it waits for a worker like any served request.
        served = _hold(bounded, pool, other)
        assert served.result(timeout=HOLD_S * 3).status_code == 504
        assert held.result(timeout=HOLD_S * 3).status_code == 504


def test_it_gives_a_slot_back_whatever_the_answer(bounded, make_key, keys):
    key = make_key("again", ["predict"])
    client = bounded.test_client()
    limiter: InflightLimiter = bounded.extensions["inflight"]
    # A bad body is refused after the slot is taken (decoding runs in the view).
    bad = client.post("/v1/models/iris:predict", json={"instances": "x"}, headers=_auth(key))
    assert bad.status_code == 400
    assert client.post("/v1/models/nope:predict", json=ROW, headers=_auth(key)).status_code == 404
    # Refused before the hook (unauthenticated, revoked): no slot is taken at all.
    assert client.post("/v1/models/iris:predict", json=ROW).status_code == 401
    assert client.post("/v1/models/iris:predict", json=ROW, headers=_auth(keys.revoked)).status_code == 401
    assert limiter.inflight == 0
    # A request that timed out released its slot: the same key is let in again.
    assert client.post("/v1/models/iris:predict", json=ROW, headers=_auth(key)).status_code == 504
    assert limiter.inflight == 0
    assert client.post("/v1/models/iris:predict", json=ROW, headers=_auth(key)).status_code == 504


def test_it_counts_refusals_in_a_metric(bounded, make_key):
    greedy = make_key("counted", ["predict"])
    client = bounded.test_client()

    def refusals() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        for line in text.splitlines():
            if line.startswith('inference_api_inflight_refusals_total{reason="key"}'):
                return float(line.split()[-1])
        return 0.0

    before = refusals()
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = _hold(bounded, pool, greedy)
        assert client.post("/v1/models/iris:predict", json=ROW, headers=_auth(greedy)).status_code == 429
        assert held.result(timeout=HOLD_S * 3).status_code == 504
    assert refusals() == before + 1
