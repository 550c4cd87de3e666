"""End-to-end behaviour of an installed platform, through its public URLs only."""

from __future__ import annotations

import random

import requests

from support.polling import poll


def _rows(n_features: int, count: int, seed: int = 1) -> list[list[float]]:
    rng = random.Random(seed)
    return [[round(rng.uniform(0, 30), 3) for _ in range(n_features)] for _ in range(count)]


def test_health_endpoints_answer(target):
    assert requests.get(f"{target.api}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{target.api}/readyz", timeout=10).json()["status"] == "ready"
    assert requests.get(f"{target.api}/v2/health/live", timeout=10).json() == {"live": True}
    assert requests.get(f"{target.api}/v2/health/ready", timeout=10).json() == {"ready": True}
    assert requests.get(f"{target.web}/healthz", timeout=10).status_code == 200
    # Kubelet probes address the pod IP, which is never in DJANGO_ALLOWED_HOSTS.
    for path in ("/healthz", "/readyz"):
        probe = requests.get(f"{target.web}{path}", headers={"Host": "10.1.2.3:8000"}, timeout=10)
        assert probe.status_code == 200, (path, probe.status_code)


def test_v1_and_v2_give_the_same_predictions(target, n_features):
    rows = _rows(n_features, 4)
    v1 = requests.post(
        f"{target.api}/v1/models/{target.model}:predict",
        json={"instances": rows},
        headers=target.auth(),
        timeout=60,
    )
    assert v1.status_code == 200, v1.text
    flat = [value for row in rows for value in row]
    v2 = requests.post(
        f"{target.api}/v2/models/{target.model}/infer",
        json={"inputs": [{"name": "input-0", "shape": [4, n_features], "datatype": "FP32", "data": flat}]},
        headers=target.auth(),
        timeout=60,
    )
    assert v2.status_code == 200, v2.text
    output = v2.json()["outputs"][0]
    assert output["shape"][0] == 4
    assert output["data"] == v1.json()["predictions"]


def test_the_production_version_answers_like_its_explicit_version(target, n_features):
    meta = requests.get(f"{target.api}/v2/models/{target.model}", headers=target.auth(), timeout=30).json()
    version = meta["parameters"]["version"]
    rows = _rows(n_features, 2, seed=2)
    unversioned = requests.post(
        f"{target.api}/v1/models/{target.model}:predict",
        json={"instances": rows},
        headers=target.auth(),
        timeout=60,
    ).json()
    versioned = requests.post(
        f"{target.api}/v1/models/{target.model}/versions/{version}:predict",
        json={"instances": rows},
        headers=target.auth(),
        timeout=60,
    ).json()
    assert unversioned["model_version"] == version
    assert versioned["predictions"] == unversioned["predictions"]


def test_an_async_job_returns_the_same_answers_as_sync_requests(target, n_features):
    rows = _rows(n_features, 300, seed=3)
    accepted = requests.post(
        f"{target.api}/v1/models/{target.model}/jobs",
        json={"instances": rows},
        headers=target.auth(),
        timeout=60,
    )
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["Location"]
    done = poll(
        lambda: requests.get(f"{target.api}{location}", headers=target.auth(), timeout=30).json(),
        lambda body: body["status"] in ("succeeded", "failed"),
        target.timeout,
    )
    assert done["status"] == "succeeded", done
    sync = requests.post(
        f"{target.api}/v1/models/{target.model}:predict",
        json={"instances": rows[:50]},
        headers=target.auth(),
        timeout=60,
    ).json()
    assert done["predictions"][:50] == sync["predictions"]
    assert len(done["predictions"]) == 300


def test_requests_without_a_valid_key_are_refused(target, n_features):
    url = f"{target.api}/v1/models/{target.model}:predict"
    body = {"instances": _rows(n_features, 1)}
    assert requests.post(url, json=body, timeout=30).status_code == 401
    assert (
        requests.post(url, json=body, headers=target.auth("ipk_00000000_wrong"), timeout=30).status_code
        == 401
    )
    problem = requests.post(url, json=body, headers={"Authorization": "Basic x"}, timeout=30)
    assert problem.status_code == 401
    assert problem.headers["Content-Type"].startswith("application/problem+json")


def test_bad_inputs_get_clear_client_errors(target, n_features):
    url = f"{target.api}/v1/models/{target.model}:predict"
    wrong_count = requests.post(
        url, json={"instances": _rows(n_features + 1, 1)}, headers=target.auth(), timeout=30
    )
    assert wrong_count.status_code == 400
    assert f"expects {n_features} features" in wrong_count.json()["detail"]
    not_json = requests.post(
        url, data=b"{oops", headers={**target.auth(), "Content-Type": "application/json"}, timeout=30
    )
    assert not_json.status_code == 400
    unknown = requests.post(
        f"{target.api}/v1/models/no-such-model:predict",
        json={"instances": [[1.0]]},
        headers=target.auth(),
        timeout=30,
    )
    assert unknown.status_code == 404


def test_each_prediction_is_in_the_audit_trail_with_its_trace_id(target, n_features, admin):
    response = requests.post(
        f"{target.api}/v1/models/{target.model}:predict",
        json={"instances": _rows(n_features, 1, seed=4)},
        headers=target.auth(),
        timeout=60,
    )
    request_id = response.headers["X-Request-ID"]
    page = poll(
        lambda: admin.get(
            f"{target.web}/admin/predictions/predictionrecord/", params={"q": request_id}, timeout=30
        ),
        lambda r: r.status_code == 200 and "1 result" in r.text,
        target.timeout,
    )
    assert request_id in page.text or "1 result" in page.text
