"""The app factory and every refusal the api makes before publishing."""

from __future__ import annotations

import json

import pytest


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_factory_builds_an_app_that_reports_health(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/v2/health/live").get_json() == {"live": True}


def test_the_factory_applies_overrides_and_refuses_bad_env(monkeypatch, tmp_path):
    from inference_api import create_app
    from inference_common.settings import ConfigError

    monkeypatch.setenv("API_SYNC_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError, match="API_SYNC_TIMEOUT_S"):
        create_app({"database_url": f"sqlite:///{tmp_path}/x.db"})


def test_openapi_lists_every_route_of_the_design(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    for path in (
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/v1/models/{name}:predict",
        "/v1/models/{name}/jobs",
        "/v1/jobs/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert spec["components"]["schemas"]["InferRequest"]["properties"]["inputs"]["type"] == "array"


def test_v1_errors_are_problem_json_and_v2_errors_are_protocol_json(client):
    v1 = client.post("/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]})
    assert v1.status_code == 401
    assert v1.mimetype == "application/problem+json"
    assert v1.get_json()["type"].endswith("#missing_api_key")
    v2 = client.post("/v2/models/iris/infer", json={})
    assert v2.status_code == 401
    assert set(v2.get_json()) == {"error"}


def test_an_unknown_route_is_a_structured_404(client):
    response = client.get("/v3/whatever")
    assert response.status_code == 404
    assert response.get_json()["detail"] == "no route for GET /v3/whatever"


def test_a_wrong_method_is_a_405_with_allow(client, keys):
    response = client.get("/v1/models/iris:predict", headers=_auth(keys.full))
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Basic abc", "invalid_api_key"),
        ("Bearer", "invalid_api_key"),
        ("Bearer ipk_00000000_x", "invalid_api_key"),
    ],
)
def test_malformed_or_unknown_keys_are_401(client, header, code):
    response = client.post("/v1/models/iris:predict", json={}, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["type"].endswith("#" + code)


def test_a_revoked_key_is_401_with_its_own_code(client, keys):
    response = client.post("/v1/models/iris:predict", json={}, headers=_auth(keys.revoked))
    assert response.status_code == 401
    assert response.get_json()["type"].endswith("#revoked_api_key")


def test_a_key_without_the_jobs_scope_is_403(client, keys):
    response = client.post(
        "/v1/models/iris/jobs", json={"instances": [[1, 2, 3, 4]]}, headers=_auth(keys.predict_only)
    )
    assert response.status_code == 403
    assert "'jobs'" in response.get_json()["detail"]


def test_unknown_models_versions_and_missing_production_are_404(client, keys):
    headers = _auth(keys.full)
    body = {"instances": [[1.0]]}
    cases = {
        "/v1/models/nope:predict": "model_not_found",
        "/v1/models/iris/versions/9:predict": "version_not_found",
        "/v1/models/draft:predict": "no_production_version",
    }
    for path, code in cases.items():
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 404, path
        assert response.get_json()["type"].endswith("#" + code)


def test_metadata_falls_back_to_the_newest_version_without_production(client, keys):
    body = client.get("/v2/models/draft", headers=_auth(keys.full)).get_json()
    assert body["parameters"]["stage"] == "staging"
    iris = client.get("/v2/models/iris", headers=_auth(keys.full)).get_json()
    assert iris["versions"] == ["1", "2"]
    assert iris["parameters"]["version"] == "1"
    assert iris["outputs"][0]["shape"] == [-1, 3]


def test_body_problems_are_refused_before_publishing(client, keys):
    headers = _auth(keys.full)
    wrong_type = client.post(
        "/v1/models/iris:predict", data="x", headers={**headers, "Content-Type": "text/csv"}
    )
    assert wrong_type.status_code == 415
    malformed = client.post(
        "/v1/models/iris:predict", data="{", headers={**headers, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    too_big = client.post(
        "/v1/models/iris:predict",
        data=json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]] * 400}),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    too_many = client.post("/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]] * 4}, headers=headers)
    assert too_many.status_code == 413
    assert too_many.get_json()["type"].endswith("#too_many_rows")


def test_the_rate_limit_applies_per_key_with_retry_after(client, keys):
    headers = _auth(keys.limited)
    statuses = [client.get("/v2/models/iris", headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = client.get("/v2/models/iris", headers=headers)
    assert int(limited.headers["Retry-After"]) > 0
    assert "rate limit" in limited.get_json()["error"]
    # Another key is not affected.
    assert client.get("/v2/models/iris", headers=_auth(keys.full)).status_code == 200


def test_metrics_count_requests_by_route_template(client, keys):
    client.get("/v2/models/iris", headers=_auth(keys.full))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'endpoint="/v2/models/<name>"' in text
