"""Every kind of bad input gets its own clear 4xx from the real api, never a 500."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

V1 = "/v1/models/binary:predict"
V2 = "/v2/models/binary/infer"


def _row(n: int = 30) -> list[float]:
    return [0.5] * n


def _post(api, path: str, data: bytes | str, content_type: str = "application/json", **headers):
    return api.post(f"{api.base}{path}", data=data, headers={"Content-Type": content_type, **headers})


def _assert_problem(response: requests.Response, status: int, code: str, needle: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"].endswith("#" + code)
    assert needle in body["detail"]


def _assert_v2_error(response: requests.Response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]


def test_malformed_json_is_a_400(api):
    _assert_problem(_post(api, V1, b'{"instances": [[1, 2'), 400, "invalid_json", "malformed JSON")
    _assert_v2_error(_post(api, V2, b"{nope"), 400, "malformed JSON")


def test_a_wrong_content_type_is_a_415(api):
    body = json.dumps({"instances": [_row()]})
    _assert_problem(_post(api, V1, body, "text/plain"), 415, "unsupported_media_type", "application/json")
    _assert_v2_error(_post(api, V2, body, "application/x-www-form-urlencoded"), 415, "application/json")


def test_a_wrong_feature_count_is_a_400(api):
    body = json.dumps({"instances": [_row(29)]})
    _assert_problem(_post(api, V1, body), 400, "wrong_feature_count", "expects 30 features")
    tensor = {"inputs": [{"name": "x", "shape": [1, 29], "datatype": "FP32", "data": _row(29)}]}
    _assert_v2_error(_post(api, V2, json.dumps(tensor)), 400, "expects 30 features")


def test_strings_where_numbers_belong_are_a_400(api):
    row: list = _row()
    row[3] = "1.5"
    _assert_problem(_post(api, V1, json.dumps({"instances": [row]})), 400, "invalid_input", "only numbers")


def test_nan_where_numbers_belong_is_a_400(api):
    # Literal NaN is not JSON; a "NaN" string is not a number.
    literal = '{"instances": [[' + ", ".join(["NaN"] + ["0.5"] * 29) + "]]}"
    _assert_problem(_post(api, V1, literal), 400, "invalid_json", "malformed JSON")
    row: list = _row()
    row[0] = "NaN"
    _assert_problem(_post(api, V1, json.dumps({"instances": [row]})), 400, "invalid_input", "only numbers")
    tensor = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [None, *_row(29)]}]}
    _assert_v2_error(_post(api, V2, json.dumps(tensor)), 400, "only numbers")


def test_a_v2_shape_that_does_not_match_the_data_is_a_400(api):
    tensor = {"inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP32", "data": _row()}]}
    _assert_v2_error(_post(api, V2, json.dumps(tensor)), 400, "needs 60")
    tensor = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "BYTES", "data": _row()}]}
    _assert_v2_error(_post(api, V2, json.dumps(tensor)), 400, "not supported")


def test_an_oversize_body_is_a_413(api):
    # Over the 4 MiB default of API_MAX_SYNC_BODY_BYTES.
    body = json.dumps({"instances": [_row()] * 40000})
    assert len(body) > 4 << 20
    _assert_problem(_post(api, V1, body), 413, "payload_too_large", "limit")


def test_too_many_rows_for_a_sync_request_point_to_jobs(api):
    body = json.dumps({"instances": [_row()] * 1025})
    _assert_problem(_post(api, V1, body), 413, "too_many_rows", "/jobs")


def test_an_unknown_model_or_version_is_a_404(api):
    body = json.dumps({"instances": [_row()]})
    _assert_problem(_post(api, "/v1/models/nope:predict", body), 404, "model_not_found", "'nope'")
    _assert_problem(
        _post(api, "/v1/models/binary/versions/999:predict", body),
        404,
        "version_not_found",
        "no version '999'",
    )
    _assert_v2_error(api.get(f"{api.base}/v2/models/nope"), 404, "not registered")


def test_a_missing_or_malformed_key_is_a_401(stack):
    body = json.dumps({"instances": [_row()]})
    response = requests.post(f"{stack.url}{V1}", data=body, headers={"Content-Type": "application/json"})
    _assert_problem(response, 401, "missing_api_key", "Bearer")
    response = requests.post(
        f"{stack.url}{V1}",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": "Basic abc"},
    )
    _assert_problem(response, 401, "invalid_api_key", "Bearer")
    response = requests.post(
        f"{stack.url}{V1}",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer ipk_00000000_guess"},
    )
    _assert_problem(response, 401, "invalid_api_key", "invalid API key")


def test_a_revoked_key_is_a_401(stack, keys):
    response = requests.post(
        f"{stack.url}{V1}", json={"instances": [_row()]}, headers={"Authorization": f"Bearer {keys.revoked}"}
    )
    _assert_problem(response, 401, "revoked_api_key", "revoked")


def test_a_key_without_the_scope_is_a_403(stack, keys):
    response = requests.post(
        f"{stack.url}/v1/models/binary/jobs",
        json={"instances": [_row()]},
        headers={"Authorization": f"Bearer {keys.predict_only}"},
    )
    _assert_problem(response, 403, "insufficient_scope", "'jobs'")


def test_exceeding_the_keys_rate_limit_is_a_429_with_retry_after(stack, keys):
    headers = {"Authorization": f"Bearer {keys.limited}"}
    statuses = []
    for _ in range(5):
        response = requests.post(f"{stack.url}{V1}", json={"instances": [_row()]}, headers=headers)
        statuses.append(response.status_code)
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    _assert_problem(response, 429, "rate_limited", "rate limit")
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "payload",
    [
        "[]",
        "null",
        '{"instances": []}',
        '{"instances": [[]]}',
        '{"instances": [[1, 2], [3]]}',
        '{"instances": [[true, false]]}',
        '{"inputs": []}',
        '{"instances": "abc"}',
        '{"instances": [[1e400]]}',
        '{"instances": [[' + ", ".join(["3.5e38"] * 30) + "]]}",
        '{"unexpected": 1}',
    ],
)
def test_odd_payloads_are_refused_with_a_4xx_never_a_500(api, payload):
    for path in (V1, V2):
        response = _post(api, path, payload)
        assert 400 <= response.status_code < 500, (path, payload, response.status_code, response.text)


def test_valid_integers_are_accepted_as_features(api, models):
    rows = np.rint(models["binary"].rows[:2]).astype(int)
    response = api.post(f"{api.base}{V1}", json={"instances": rows.tolist()})
    assert response.status_code == 200
    expected = models["binary"].expected(rows.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(response.json()["predictions"], dtype=np.float32), expected)
