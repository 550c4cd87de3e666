"""Predictions through the real api, broker and worker equal the model's own predict."""

from __future__ import annotations

import numpy as np
import pytest


def _v2_body(rows: np.ndarray) -> dict:
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.reshape(-1).tolist(),
            }
        ]
    }


@pytest.mark.parametrize("name", ["binary", "multiclass", "regression"])
def test_v1_predict_equals_the_models_own_predict(api, models, name):
    model = models[name]
    rows = model.rows[:7]
    response = api.post(f"{api.base}/v1/models/{name}:predict", json={"instances": rows.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == model.version
    got = np.asarray(body["predictions"], dtype=np.float32)
    np.testing.assert_array_equal(got, model.expected(rows))


@pytest.mark.parametrize("name", ["binary", "multiclass", "regression"])
def test_v2_infer_equals_the_models_own_predict(api, models, name):
    model = models[name]
    rows = model.rows[10:15]
    response = api.post(f"{api.base}/v2/models/{name}/infer", json={"id": "req-1", **_v2_body(rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-1"
    assert body["model_name"] == name
    output = body["outputs"][0]
    assert output["name"] == "predict"
    expected = model.expected(rows)
    assert output["shape"] == list(expected.shape)
    np.testing.assert_array_equal(
        np.asarray(output["data"], dtype=np.float32).reshape(expected.shape), expected
    )
    assert response.headers["X-Request-ID"]


def test_an_explicit_version_is_served_by_that_version(api, models):
    staging = models["binary-staging"]
    production = models["binary"]
    rows = staging.rows[:4]
    url = f"{api.base}/v2/models/binary/versions/{staging.version}/infer"
    body = api.post(url, json=_v2_body(rows)).json()
    got = np.asarray(body["outputs"][0]["data"], dtype=np.float32)
    np.testing.assert_array_equal(got, staging.expected(rows))
    assert not np.array_equal(got, production.expected(rows)), "the versions must differ for this test"
    v1 = api.post(
        f"{api.base}/v1/models/binary/versions/{staging.version}:predict", json={"instances": rows.tolist()}
    )
    np.testing.assert_array_equal(
        np.asarray(v1.json()["predictions"], dtype=np.float32), staging.expected(rows)
    )


def test_unversioned_requests_use_the_production_version(api, models):
    rows = models["binary"].rows[:3]
    body = api.post(f"{api.base}/v1/models/binary:predict", json={"instances": rows.tolist()}).json()
    assert body["model_version"] == models["binary"].version


def test_model_metadata_describes_inputs_and_outputs(api, models):
    body = api.get(f"{api.base}/v2/models/multiclass").json()
    assert body["name"] == "multiclass"
    assert body["platform"] == "xgboost"
    assert body["inputs"][0]["shape"] == [-1, 4]
    assert body["outputs"][0]["shape"] == [-1, 3]
    versioned = api.get(f"{api.base}/v2/models/binary/versions/{models['binary-staging'].version}").json()
    assert versioned["parameters"]["stage"] == "staging"
    assert sorted(versioned["versions"]) == sorted(
        [models["binary"].version, models["binary-staging"].version]
    )


def test_health_and_readiness_endpoints_answer(api):
    assert api.get(f"{api.base}/healthz").status_code == 200
    assert api.get(f"{api.base}/readyz").json()["checks"] == {"broker": True, "database": True}
    assert api.get(f"{api.base}/v2/health/live").json() == {"live": True}
    assert api.get(f"{api.base}/v2/health/ready").json() == {"ready": True}
    assert api.get(f"{api.base}/v2/models/binary/ready").json()["ready"] is True


def test_concurrent_requests_are_micro_batched_and_all_answered_correctly(api, models, db):
    from concurrent.futures import ThreadPoolExecutor

    model = models["binary"]
    rows = model.rows[:60]

    def one(i: int):
        response = api.post(f"{api.base}/v1/models/binary:predict", json={"instances": [rows[i].tolist()]})
        return response.status_code, response.json().get("predictions"), response.headers.get("X-Request-ID")

    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(one, range(len(rows))))
    assert all(status == 200 for status, _, _ in results)
    got = np.asarray([predictions[0] for _, predictions, _ in results], dtype=np.float32)
    np.testing.assert_array_equal(got, model.expected(rows))
    request_ids = [request_id for _, _, request_id in results]
    sizes = db.execute(
        "SELECT max(batch_size) FROM prediction_records WHERE request_id = ANY(%s)", (request_ids,)
    ).fetchone()[0]
    assert sizes > 1, "requests arriving together should share a predict call"


def test_metrics_and_openapi_are_served(api):
    metrics = api.get(f"{api.base}/metrics")
    assert metrics.status_code == 200
    assert "inference_api_requests_total" in metrics.text
    spec = api.get(f"{api.base}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/v2/models/{name}/infer" in spec["paths"]


def test_the_selftest_command_used_by_helm_test_passes(infra, stack):
    from support.stack import manage

    assert manage(infra.env, "selftest", "--api-url", stack.url) == "selftest passed"
