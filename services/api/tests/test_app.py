"""The app factory and every refusal the api makes before publishing."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from inference_common.jobs import encode_outputs
from inference_common.schema import job_chunks, jobs


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


def _problem_code(response) -> str:
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == response.status_code
    return body["type"].rsplit("#", 1)[1]


def test_readiness_reports_the_file_broker_and_sqlite(client, keys):
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "checks": {"broker": True, "database": True}}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    model = client.get("/v2/models/iris/ready", headers=_auth(keys.full))
    assert model.get_json() == {"name": "iris", "version": "1", "ready": True}


def test_the_openapi_document_declares_bearer_auth_and_both_error_formats(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["info"]["title"]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["security"] == [{"bearerAuth": []}]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferRequest"
    }
    assert "application/json" in infer["responses"]["401"]["content"]
    v1 = spec["paths"]["/v1/models/{name}:predict"]["post"]
    assert "application/problem+json" in v1["responses"]["401"]["content"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    # Every $ref points at a schema the document defines.
    text = json.dumps(spec)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in spec["components"]["schemas"], ref


def test_every_inference_route_requires_a_key(client):
    routes = [
        ("get", "/v2/models/iris"),
        ("get", "/v2/models/iris/versions/1"),
        ("get", "/v2/models/iris/ready"),
        ("post", "/v2/models/iris/infer"),
        ("post", "/v2/models/iris/versions/1/infer"),
        ("post", "/v1/models/iris:predict"),
        ("post", "/v1/models/iris/versions/1:predict"),
        ("post", "/v1/models/iris/jobs"),
        ("get", "/v1/jobs/00000000-0000-0000-0000-000000000000"),
    ]
    for method, path in routes:
        response = getattr(client, method)(path)
        assert response.status_code == 401, path
        if path.startswith("/v2/"):
            assert response.mimetype == "application/json", path
            assert response.get_json() == {"error": "missing API key: send 'Authorization: Bearer <key>'"}, (
                path
            )
        else:
            assert _problem_code(response) == "missing_api_key", path


def test_a_wrong_secret_behind_a_valid_prefix_is_401(client, keys):
    prefix = keys.full.split("_")[1]
    response = client.post("/v1/models/iris:predict", json={}, headers=_auth(f"ipk_{prefix}_wrong"))
    assert response.status_code == 401
    assert _problem_code(response) == "invalid_api_key"


def test_v2_errors_carry_the_message_in_error(client, keys):
    headers = _auth(keys.full)
    unknown = client.post("/v2/models/nope/infer", json={}, headers=headers)
    assert unknown.status_code == 404
    assert unknown.get_json() == {"error": "model 'nope' is not registered"}
    version = client.get("/v2/models/iris/versions/7", headers=headers)
    assert version.status_code == 404
    assert version.get_json() == {"error": "model 'iris' has no version '7' (known: 1, 2)"}
    no_production = client.post("/v2/models/draft/infer", json={}, headers=headers)
    assert no_production.status_code == 404
    assert "has no production version" in no_production.get_json()["error"]
    missing = client.get("/v2/nothing-here")
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "no route for GET /v2/nothing-here"}


def test_a_key_without_the_predict_scope_is_403(client, make_key):
    jobs_only = make_key("jobs-only", ["jobs"])
    response = client.post("/v2/models/iris/infer", json={}, headers=_auth(jobs_only))
    assert response.status_code == 403
    assert response.get_json() == {"error": "this API key lacks the 'predict' scope"}


def test_v2_decoding_errors_are_400_before_publishing(client, keys):
    headers = _auth(keys.full)
    tensor = {"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": [1, 2, 3, 4]}
    response = client.post("/v2/models/iris/infer", json={"inputs": [tensor]}, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("datatype 'BYTES' is not supported")
    wrong_width = {**tensor, "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}
    response = client.post(
        "/v2/models/iris/versions/2/infer", json={"inputs": [wrong_width]}, headers=headers
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "input 'x': the model expects 4 features per row, got 3"


def test_request_body_errors_have_their_own_codes(client, keys):
    headers = _auth(keys.full)
    wrong_type = client.post(
        "/v1/models/iris:predict", data="a,b", headers={**headers, "Content-Type": "text/csv"}
    )
    assert (wrong_type.status_code, _problem_code(wrong_type)) == (415, "unsupported_media_type")
    assert wrong_type.get_json()["detail"] == "Content-Type must be application/json, got text/csv"
    no_type = client.post("/v1/models/iris:predict", data=b"{}", headers=headers)
    assert no_type.status_code == 415
    json_headers = {**headers, "Content-Type": "application/json"}
    for body in (b"{", b"", b'{"instances": [[NaN, 1, 2, 3]]}', b"\xff\xfe"):
        response = client.post("/v1/models/iris:predict", data=body, headers=json_headers)
        assert (response.status_code, _problem_code(response)) == (400, "invalid_json"), body
    too_big = client.post("/v1/models/iris:predict", data=b"[" + b"1," * 3000 + b"1]", headers=json_headers)
    assert (too_big.status_code, _problem_code(too_big)) == (413, "payload_too_large")
    assert too_big.get_json()["detail"] == "request body is 6003 bytes; the limit is 4096"


def test_job_chunks_are_persistent_msgpack_messages_with_raw_rows(client, keys, published):
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5]], dtype=np.float32)
    response = client.post(
        "/v1/models/iris/jobs", json={"instances": rows.tolist()}, headers=_auth(keys.full)
    )
    assert response.status_code == 202
    [(chunk, properties)] = published("inference", jobs=True)
    # A job outlives the api process that accepted it: its chunks must survive a broker restart.
    assert properties["delivery_mode"] == 2
    assert chunk["rows_f32"] == rows.tobytes()
    assert chunk["job_id"] == response.get_json()["id"]


def test_a_body_shorter_than_its_content_length_is_refused(client, keys):
    # The body is read in one call of its declared length (decoding._read_body); a client that
    # stops early gets a clear 400, never a half-read body parsed as if it were whole.
    body = b'{"instances": [[1, 2, 3, 4]]}'
    headers = {**_auth(keys.full), "Content-Type": "application/json"}
    response = client.post(
        "/v1/models/iris:predict", data=body, headers=headers, environ_overrides={"CONTENT_LENGTH": "40"}
    )
    assert (response.status_code, _problem_code(response)) == (400, "incomplete_body")
    assert response.get_json()["detail"] == f"request body ended after {len(body)} of 40 bytes"


def test_too_many_rows_for_a_sync_request_points_to_jobs(client, keys):
    response = client.post(
        "/v2/models/iris/infer",
        json={"inputs": [{"name": "x", "shape": [4, 4], "datatype": "FP32", "data": [0.5] * 16}]},
        headers=_auth(keys.full),
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == (
        "4 rows exceed the sync limit of 3; use POST /v1/models/iris/jobs for large inputs"
    )


def test_the_rate_limit_counts_requests_that_fail_after_authentication(client, keys):
    headers = _auth(keys.limited)
    statuses = [client.get("/v2/models/nope", headers=headers).status_code for _ in range(3)]
    assert statuses == [404, 404, 429]


def test_the_rate_limit_is_one_budget_per_key_across_all_routes(client, keys):
    headers = _auth(keys.limited)
    # Flask-Limiter's Retry-After is int(whole second after the window's end - now): the full 60 s
    # unless the first request's fraction of a second plus the time the three requests take passes
    # a second boundary. Starting just after one keeps that race out of the exact value checked.
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    assert client.get("/v2/models/iris", headers=headers).status_code == 200
    assert client.get("/v2/models/iris/versions/2", headers=headers).status_code == 200
    third = client.post("/v1/models/iris:predict", json={}, headers=headers)
    assert third.status_code == 429
    assert _problem_code(third) == "rate_limited"
    assert third.headers["Retry-After"] == "60"
    assert third.headers["X-RateLimit-Limit"] == "2"
    assert third.headers["X-RateLimit-Remaining"] == "0"
    # Health endpoints are never limited.
    assert client.get("/healthz", headers=headers).status_code == 200


def test_unauthenticated_requests_do_not_use_up_a_keys_budget(client, keys):
    for _ in range(5):
        assert client.get("/v2/models/iris").status_code == 401
    assert client.get("/v2/models/iris", headers=_auth(keys.limited)).status_code == 200


def test_a_key_with_a_zero_limit_is_unlimited(client, keys):
    statuses = {client.get("/v2/models/iris", headers=_auth(keys.full)).status_code for _ in range(20)}
    assert statuses == {200}


def test_the_last_use_of_a_key_is_recorded(client, keys, engine):
    from sqlalchemy import select

    from inference_common.schema import api_keys

    prefix = keys.full.split("_")[1]
    with engine.connect() as conn:
        assert (
            conn.execute(select(api_keys.c.last_used_at).where(api_keys.c.prefix == prefix)).scalar() is None
        )
    client.get("/v2/models/iris", headers=_auth(keys.full))
    with engine.connect() as conn:
        assert conn.execute(select(api_keys.c.last_used_at).where(api_keys.c.prefix == prefix)).scalar()


def test_a_finished_job_answers_its_chunks_in_order_whichever_way_they_were_stored(client, keys, engine):
    rows = np.zeros((3, 4), dtype=np.float32)
    job_id = client.post(
        "/v1/models/iris/jobs", json={"instances": rows.tolist()}, headers=_auth(keys.full)
    ).get_json()["id"]
    first = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]], dtype=np.float32)
    second = np.array([[0.5, 0.25, 0.25]], dtype=np.float32)
    now = datetime.now(UTC)
    chunk = {"job_id": uuid.UUID(job_id), "created_at": now}
    with engine.begin() as conn:
        # The second chunk as a current worker stores it, the first as workers did before outputs_f32.
        conn.execute(
            job_chunks.insert().values(
                **chunk,
                chunk_index=1,
                row_offset=2,
                n_rows=1,
                outputs_f32=encode_outputs(second),
                shape=[1, 3],
            )
        )
        conn.execute(
            job_chunks.insert().values(
                **chunk,
                chunk_index=0,
                row_offset=0,
                n_rows=2,
                outputs=first.reshape(-1).tolist(),
                shape=[2, 3],
            )
        )
        conn.execute(jobs.update().where(jobs.c.id == uuid.UUID(job_id)).values(status="succeeded"))

    view = client.get(f"/v1/jobs/{job_id}", headers=_auth(keys.full)).get_json()

    assert view["status"] == "succeeded"
    # float64 of the float32 outputs, as the sync path answers.
    assert view["predictions"] == np.concatenate([first, second]).tolist()


@pytest.mark.parametrize("wait", ["soon", "-1", "nan", "3601"])
def test_a_bad_wait_is_refused(client, keys, wait):
    job_id = client.post(
        "/v1/models/iris/jobs", json={"instances": [[1, 2, 3, 4]]}, headers=_auth(keys.full)
    ).get_json()["id"]

    response = client.get(f"/v1/jobs/{job_id}?wait={wait}", headers=_auth(keys.full))

    assert (response.status_code, _problem_code(response)) == (400, "invalid_wait")


def test_a_long_poll_on_sqlite_answers_when_the_job_ends(client, keys, engine):
    # SQLite sends no notifications: the waiting request looks at the job every 50 ms.
    job_id = client.post(
        "/v1/models/iris/jobs", json={"instances": [[1, 2, 3, 4]]}, headers=_auth(keys.full)
    ).get_json()["id"]

    def finish() -> None:
        time.sleep(0.3)
        with engine.begin() as conn:
            conn.execute(
                job_chunks.insert().values(
                    job_id=uuid.UUID(job_id),
                    chunk_index=0,
                    row_offset=0,
                    n_rows=1,
                    outputs_f32=encode_outputs(np.array([[0.2, 0.3, 0.5]], dtype=np.float32)),
                    shape=[1, 3],
                    created_at=datetime.now(UTC),
                )
            )
            conn.execute(jobs.update().where(jobs.c.id == uuid.UUID(job_id)).values(status="succeeded"))

    finisher = threading.Thread(target=finish)
    started = time.monotonic()
    finisher.start()
    view = client.get(f"/v1/jobs/{job_id}?wait=20", headers=_auth(keys.full)).get_json()
    elapsed = time.monotonic() - started
    finisher.join()

    assert view["status"] == "succeeded"
    assert len(view["predictions"]) == 1
    assert 0.3 <= elapsed < 10


def test_a_wait_longer_than_the_api_allows_is_cut_to_its_bound(app, client, keys):
    app.extensions["inference"].settings = app.extensions["inference"].settings.with_overrides(
        {"job_max_wait_s": 0.2}
    )
    job_id = client.post(
        "/v1/models/iris/jobs", json={"instances": [[1, 2, 3, 4]]}, headers=_auth(keys.full)
    ).get_json()["id"]
    started = time.monotonic()

    view = client.get(f"/v1/jobs/{job_id}?wait=3600", headers=_auth(keys.full)).get_json()

    assert view["status"] == "queued"
    assert 0.2 <= time.monotonic() - started < 3
