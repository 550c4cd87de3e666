"""The api's in-flight bound, on the real gunicorn api and RabbitMQ.

No worker runs at first, so every request that is let in waits for an answer:
exactly as many wait as the bounds allow; every other one is refused at once
(429 for a key over its share, 503 when the process is full) with Retry-After.
A worker started afterwards answers every request that waited.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
import pytest
import requests

from support.stack import Stack, wait_until

MAX_INFLIGHT = 3
MAX_PER_KEY = 2
# Long enough for a worker started mid-test to answer the requests that wait.
SYNC_TIMEOUT_S = 60
# A refusal is immediate; anything slower means the request queued for a slot.
PROMPT_S = 3.0


@pytest.fixture
def bounded(infra, models, run_id) -> Iterator[Stack]:
    """One gunicorn process with a tiny bound, and no worker yet."""
    stack = Stack(env=infra.env, logs=infra.logs, prefix=f"bound-{run_id}")
    try:
        stack.start_api(
            workers=1,
            API_THREADS="8",
            API_MAX_INFLIGHT=str(MAX_INFLIGHT),
            API_MAX_INFLIGHT_PER_KEY=str(MAX_PER_KEY),
            API_SYNC_TIMEOUT_S=str(SYNC_TIMEOUT_S),
        )
        yield stack
    finally:
        stack.stop()


def _post(stack: Stack, key: str, row: np.ndarray) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(
        f"{stack.url}/v1/models/binary:predict",
        json={"instances": [row.tolist()]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=SYNC_TIMEOUT_S + 30,
    )
    return response, time.monotonic() - started


def _settle(futures: list[Future], refused: int) -> tuple[list[Future], list[Future]]:
    """Wait until ``refused`` requests have been answered; return (answered, still waiting)."""
    wait_until(lambda: sum(f.done() for f in futures) >= refused, PROMPT_S * 3)
    # Give a request that should have waited the chance to (wrongly) come back too.
    time.sleep(0.5)
    done, pending = wait(futures, timeout=0)
    return list(done), list(pending)


def _refusal(future: Future, status: int, code: str) -> None:
    response, elapsed = future.result()
    assert response.status_code == status, response.text
    assert response.json()["type"].endswith(f"#{code}")
    assert response.headers["Retry-After"] == "1"
    assert elapsed < PROMPT_S, f"refused after {elapsed:.1f}s: it queued instead of being refused"


def _refusals(stack: Stack) -> dict[str, float]:
    counts = {}
    for line in requests.get(f"{stack.url}/metrics", timeout=10).text.splitlines():
        if line.startswith("inference_api_inflight_refusals_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            counts[reason] = float(line.split()[-1])
    return counts


def test_it_lets_exactly_the_bound_wait_and_refuses_the_rest_at_once(bounded, keys, models):
    stack = bounded
    model = models["binary"]
    rows = model.rows[:10]
    with ThreadPoolExecutor(max_workers=10) as pool:
        # One key sends 6 at once: its share (2) waits, 4 are told to slow down.
        greedy = [pool.submit(_post, stack, keys.full, rows[i]) for i in range(6)]
        done, waiting_greedy = _settle(greedy, refused=6 - MAX_PER_KEY)
        assert len(waiting_greedy) == MAX_PER_KEY
        for future in done:
            _refusal(future, 429, "too_many_concurrent_requests")

        # A second key is still served while the first is at its cap: it takes the
        # last free slot; its other requests find the process full and get 503.
        other = [pool.submit(_post, stack, keys.other, rows[6 + i]) for i in range(4)]
        done, waiting_other = _settle(other, refused=4 - (MAX_INFLIGHT - MAX_PER_KEY))
        assert len(waiting_other) == MAX_INFLIGHT - MAX_PER_KEY
        for future in done:
            _refusal(future, 503, "overloaded")

        # Threads outside the bound still answer probes and scrapes while it is full.
        assert requests.get(f"{stack.url}/readyz", timeout=PROMPT_S).status_code == 200
        assert _refusals(stack) == {"key": 4.0, "global": 3.0}

        # The requests that waited are answered, correctly, once a worker consumes.
        stack.start_worker(concurrency=1)
        waited = waiting_greedy + waiting_other
        answers = [future.result(timeout=SYNC_TIMEOUT_S)[0] for future in waited]
        assert [r.status_code for r in answers] == [200] * len(waited), [r.text for r in answers]
        got = sorted(r.json()["predictions"][0] for r in answers)
        waited_rows = [rows[i] for i, f in enumerate(greedy + other) if f in waited]
        np.testing.assert_array_equal(got, sorted(model.expected(np.asarray(waited_rows))))

    # Every slot was given back: the first key may use its whole share again.
    again = [_post(stack, keys.full, rows[i])[0] for i in range(2)]
    assert [r.status_code for r in again] == [200, 200]
