"""``PredictRequest`` rows as base64 float32 (``rows_b64``, like job chunks), or legacy JSON ``rows``."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
from pydantic import ValidationError

from inference_common.contract import PredictRequest, encode_rows


def _fields(**overrides: object) -> dict[str, object]:
    return {
        "request_id": "r1",
        "protocol": "v2",
        "model": "m",
        "version": "1",
        "model_version_id": 1,
        "n_features": 3,
        "api_key_id": 7,
        "enqueued_at": time.time(),
        "route": "production",
        "shadow_of": None,
        "trace": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        **overrides,
    }


def _b64(values: list[float], dtype: str = "<f4") -> str:
    return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode()


def test_a_request_made_from_rows_reaches_the_worker_bit_for_bit() -> None:
    matrix = np.random.default_rng(5).standard_normal((40, 3))

    made = PredictRequest.of_rows(matrix, **_fields())
    body = json.loads(json.dumps(made.payload()))
    received = PredictRequest.model_validate(body)

    assert "rows" not in body
    assert body["rows_b64"] == encode_rows(matrix)
    assert received == made
    assert received.matrix().dtype == np.float32
    assert received.matrix().tobytes() == matrix.astype(np.float32).tobytes()


def test_a_request_built_without_validation_decodes_to_its_rows() -> None:
    # What the api publishes: model_construct with every field, the rows already checked by decoding.
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    built = PredictRequest.model_construct(**_fields(), rows=None, rows_b64=encode_rows(rows))

    np.testing.assert_array_equal(built.matrix(), rows)
    received = PredictRequest.model_validate(json.loads(json.dumps(built.payload())))
    np.testing.assert_array_equal(received.matrix(), rows)
    assert received.rows is None


def test_legacy_json_rows_are_still_served() -> None:
    request = PredictRequest.model_validate(_fields(rows=[[1, 2, 3], [4.5, 5, 6]]))

    np.testing.assert_array_equal(request.matrix(), np.array([[1, 2, 3], [4.5, 5, 6]], dtype=np.float32))
    assert "rows_b64" not in request.payload()


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ({}, "exactly one"),
        ({"rows": [[1.0, 2.0, 3.0]], "rows_b64": _b64([1, 2, 3])}, "exactly one"),
        ({"rows": None, "rows_b64": None}, "exactly one"),
        ({"rows_b64": "not base64!"}, "not valid base64"),
        ({"rows_b64": _b64([1, 2, 3])[:-2]}, "not valid base64"),
        # Four values do not make rows of n_features=3: a width the encoding cannot split.
        ({"rows_b64": _b64([1, 2, 3, 4])}, "whole number"),
        ({"rows_b64": ""}, "at least 1 character"),
        ({"rows_b64": _b64([1, float("nan"), 3])}, "NaN or infinite"),
        ({"rows_b64": _b64([1, 2, float("inf")])}, "NaN or infinite"),
        ({"rows": [[1.0, float("-inf"), 3.0]]}, "finite"),
    ],
)
def test_rows_in_a_malformed_encoding_are_refused(rows: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        PredictRequest.model_validate(_fields(**rows))


@pytest.mark.parametrize(
    ("matrix", "reason"),
    [
        (np.ones((2, 4)), "rows of 3 values"),
        (np.ones((0, 3)), "rows of 3 values"),
        (np.array([[1.0, np.inf, 2.0]]), "NaN or infinite"),
        (np.array([[1.0, 1e39, 2.0]]), "NaN or infinite"),
    ],
)
def test_rows_that_break_a_rule_make_no_request(matrix: np.ndarray, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        PredictRequest.of_rows(matrix, **_fields())


def test_encoded_rows_do_not_skip_the_requests_own_rules() -> None:
    with pytest.raises(ValidationError, match="shadow_of is required"):
        PredictRequest.of_rows(np.ones((1, 3)), **_fields(route="shadow"))


def test_a_request_built_with_a_broken_encoding_fails_when_its_rows_are_read() -> None:
    built = PredictRequest.model_construct(**_fields(), rows=None, rows_b64=_b64([1, 2]))

    with pytest.raises(ValueError, match="whole number"):
        built.matrix()
