"""Canary and shadow releases through the real api, broker, worker and database.

The canary share is a random draw per request, so its check is statistical:
with n = 400 requests at p = 0.30 the observed share has a binomial standard
deviation of sqrt(0.3 * 0.7 / 400) = 0.0229; the tolerance of +-0.075 is
about 3.3 of them, so a correct router fails this test about once in a
thousand runs, while a router that ignored the canary (0.0) or split evenly
(0.5) fails it every time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg
import pytest
import requests

from support.polling import poll
from support.stack import Stack

N_REQUESTS = 400
CANARY_PERCENT = 30
TOLERANCE = 0.075
#: Registry cache ttl of the api that checks that stage changes wait for it.
TTL_S = 3.0


def _records(db: psycopg.Connection, request_ids: list[str]) -> dict[str, tuple]:
    """request_id -> (version, route, shadow_of, outputs) of the audit rows that exist."""
    rows = db.execute(
        """SELECT r.request_id, v.version, r.route, r.shadow_of, r.outputs
           FROM prediction_records r JOIN model_versions v ON v.id = r.model_version_id
           WHERE r.request_id = ANY(%s)""",
        (request_ids,),
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _shadows(db: psycopg.Connection, primary_ids: list[str]) -> dict[str, tuple]:
    """shadow_of -> (request_id, version, route, outputs) of the shadow copies recorded so far."""
    rows = db.execute(
        """SELECT r.shadow_of, r.request_id, v.version, r.route, r.outputs
           FROM prediction_records r JOIN model_versions v ON v.id = r.model_version_id
           WHERE r.shadow_of = ANY(%s)""",
        (primary_ids,),
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _v1(api: requests.Session, url: str, row: np.ndarray) -> requests.Response:
    response = api.post(url, json={"instances": [row.tolist()]}, timeout=60)
    assert response.status_code == 200, response.text
    return response


def _v2(api: requests.Session, url: str, row: np.ndarray) -> requests.Response:
    body = {"inputs": [{"name": "x", "shape": [1, len(row)], "datatype": "FP32", "data": row.tolist()}]}
    response = api.post(url, json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response


def _answer(response: requests.Response) -> float:
    body = response.json()
    if "predictions" in body:
        return body["predictions"][0]
    return body["outputs"][0]["data"][0]


@pytest.fixture(scope="module")
def canary_pair(register_version, train_binary, models):
    """Production (20 trees) and a 30% canary (3 trees) of one name: different answers."""
    rows = models["binary"].rows
    production = register_version("routed-canary", train_binary(20), rows, "production")
    canary = register_version("routed-canary", train_binary(3), rows, "canary", CANARY_PERCENT)
    return production, canary


def test_the_canary_takes_its_share_and_every_answer_is_its_servers_own(api, db, models, canary_pair):
    production, canary = canary_pair
    data = models["binary"].rows
    rows = data[np.arange(N_REQUESTS) % len(data)]
    by_version = {production.version: production, canary.version: canary}
    other = {production.version: canary, canary.version: production}
    urls = [f"{api.base}/v1/models/routed-canary:predict", f"{api.base}/v2/models/routed-canary/infer"]

    def send(index: int) -> requests.Response:
        return (_v1 if index % 2 == 0 else _v2)(api, urls[index % 2], rows[index])

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(send, range(N_REQUESTS)))

    served: dict[str, str] = {}
    for index, response in enumerate(responses):
        version = response.headers["X-Model-Version"]
        assert response.json().get("model_version") == version
        expected = float(by_version[version].expected(rows[index : index + 1])[0])
        assert np.float32(_answer(response)) == np.float32(expected), (index, version)
        # The two versions disagree on this row, so the check above tells them apart.
        assert np.float32(expected) != np.float32(other[version].expected(rows[index : index + 1])[0])
        served[response.headers["X-Request-ID"]] = version

    ids = list(served)
    records = poll(lambda: _records(db, ids), lambda found: len(found) == N_REQUESTS, 60)
    for request_id, (version, route, shadow_of, _) in records.items():
        assert version == served[request_id], "the audit row names the version that answered"
        assert route == ("canary" if version == canary.version else "production")
        assert shadow_of == ""
    share = sum(version == canary.version for version in served.values()) / N_REQUESTS
    assert abs(share - CANARY_PERCENT / 100) <= TOLERANCE, f"observed canary share {share:.3f}"


@pytest.fixture(scope="module")
def shadow_pair(register_version, train_binary, models):
    """Production (20 trees) and a shadow (8 trees, depth 2) of one name."""
    rows = models["binary"].rows
    production = register_version("routed-shadow", train_binary(20), rows, "production")
    shadow = register_version("routed-shadow", train_binary(8, depth=2), rows, "shadow")
    return production, shadow


def test_a_shadow_records_its_own_answer_while_the_client_gets_production(api, db, shadow_pair):
    production, shadow = shadow_pair
    rows = production.rows[:20]
    url = f"{api.base}/v1/models/routed-shadow:predict"
    primaries: dict[str, int] = {}
    for index, row in enumerate(rows):
        response = _v1(api, url, row)
        assert response.headers["X-Model-Version"] == production.version
        assert np.float32(_answer(response)) == production.expected(rows[index : index + 1])[0]
        primaries[response.headers["X-Request-ID"]] = index
    ids = list(primaries)
    shadows = poll(lambda: _shadows(db, ids), lambda found: len(found) == len(ids), 60)
    # Audit rows are written after the replies, and a shadow copy may be served (and recorded)
    # by another pool process before its primary's batch commits: wait for both.
    records = poll(lambda: _records(db, ids), lambda found: len(found) == len(ids), 60)
    for primary_id, index in primaries.items():
        shadow_id, version, route, outputs = shadows[primary_id]
        assert (version, route) == (shadow.version, "shadow")
        assert shadow_id != primary_id
        expected = shadow.expected(rows[index : index + 1])
        np.testing.assert_array_equal(np.asarray(outputs, dtype=np.float32), expected)
        assert expected[0] != production.expected(rows[index : index + 1])[0]
        assert records[primary_id][:3] == (production.version, "production", "")


def test_a_pinned_request_is_not_shadowed(api, db, shadow_pair):
    production, _ = shadow_pair
    row = production.rows[0]
    pinned = _v2(api, f"{api.base}/v2/models/routed-shadow/versions/{production.version}/infer", row)
    assert pinned.headers["X-Model-Version"] == production.version
    pinned_id = pinned.headers["X-Request-ID"]
    # A later unversioned request is shadowed; once its copy is recorded, the
    # pinned request (published before it) would have had its copy too.
    later = _v1(api, f"{api.base}/v1/models/routed-shadow:predict", row).headers["X-Request-ID"]
    poll(lambda: _shadows(db, [later]), lambda found: later in found, 60)
    record = poll(lambda: _records(db, [pinned_id]), lambda found: pinned_id in found, 60)
    assert record[pinned_id][1] == "pinned"
    assert _shadows(db, [pinned_id]) == {}


@pytest.fixture(scope="module")
def ttl_api(stack, infra, keys) -> Iterator[requests.Session]:
    """A second api process on the shared worker, caching the registry for ``TTL_S``."""
    cached = Stack(env=infra.env, logs=infra.logs, prefix=stack.prefix)
    try:
        cached.start_api(workers=1, API_CACHE_TTL_S=str(TTL_S))
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {keys.full}"
        session.base = cached.url  # type: ignore[attr-defined]
        yield session
    finally:
        cached.stop()


def test_a_stage_change_takes_effect_within_the_cache_ttl(
    ttl_api, set_stage, register_version, train_binary, models
):
    rows = models["binary"].rows
    production = register_version("routed-ttl", train_binary(20), rows, "production")
    candidate = register_version("routed-ttl", train_binary(3), rows, "staging")
    url = f"{ttl_api.base}/v1/models/routed-ttl:predict"

    def served() -> str:
        return _v1(ttl_api, url, rows[0]).headers["X-Model-Version"]

    assert served() == production.version  # loads the cache
    set_stage("routed-ttl", candidate.version, "canary", 100)
    changed = time.monotonic()
    assert served() == production.version, "within the ttl the cached stages still apply"
    poll(served, lambda version: version == candidate.version, TTL_S + 10)
    assert time.monotonic() - changed <= TTL_S + 10
    set_stage("routed-ttl", candidate.version, "staging", 0)
    poll(served, lambda version: version == production.version, TTL_S + 10)
