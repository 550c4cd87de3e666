"""Request decoding: exact, or refused with a clear 4xx."""

from __future__ import annotations

import numpy as np
import pytest

from inference_api.decoding import decode_v1, decode_v2
from inference_api.errors import ApiError


def _v2(data, shape, datatype="FP32", **extra):
    return {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}], **extra}


def test_v1_instances_decode_exactly():
    matrix = decode_v1({"instances": [[1, 2.5], [3, -4e-3]]}, 2)
    np.testing.assert_array_equal(matrix, [[1, 2.5], [3, -4e-3]])


def test_v2_flat_and_nested_data_decode_exactly():
    flat = decode_v2(_v2([1, 2, 3, 4, 5, 6], [3, 2]), 2)[1]
    nested = decode_v2(_v2([[1, 2], [3, 4], [5, 6]], [3, 2]), 2)[1]
    np.testing.assert_array_equal(flat, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(nested, flat)
    assert decode_v2(_v2([1, 2], [1, 2], "INT64", id="abc"), 2)[0].id == "abc"


def test_a_single_feature_model_accepts_a_flat_instance_list():
    np.testing.assert_array_equal(decode_v1({"instances": [1.0, 2.0]}, 1), [[1.0], [2.0]])


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ([1, 2], "invalid_input"),
        ({"instances": []}, "invalid_input"),
        ({"instances": [["1", 2]]}, "invalid_input"),
        ({"instances": [[True, 2]]}, "invalid_input"),
        ({"instances": [[None, 2]]}, "invalid_input"),
        ({"instances": [[1, 2], [3]]}, "invalid_input"),
        ({"instances": [[1, 2, 3]]}, "wrong_feature_count"),
        ({"instances": [[1e39, 2]]}, "invalid_input"),
        ({"instances": [[1, 2]], "extra": 1}, "invalid_input"),
        ({"instances": "12"}, "invalid_input"),
    ],
)
def test_bad_v1_payloads_are_400(payload, code):
    with pytest.raises(ApiError) as caught:
        decode_v1(payload, 2)
    assert caught.value.status == 400
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (_v2([1, 2, 3], [2, 2]), "invalid_shape"),
        (_v2([1, 2], [1, 2], "BYTES"), "invalid_datatype"),
        (_v2([1.5, 2], [1, 2], "INT32"), "invalid_input"),
        (_v2([-1, 2], [1, 2], "UINT8"), "invalid_input"),
        (_v2([1, 2], [-1, 2]), "invalid_shape"),
        (_v2([1, 2], [2]), "invalid_shape"),
        (_v2([1, 2, 3], [1, 3]), "wrong_feature_count"),
        (_v2(["a", 2], [1, 2]), "invalid_input"),
        ({"inputs": []}, "invalid_input"),
        ({"inputs": [_v2([1, 2], [1, 2])["inputs"][0]] * 2}, "invalid_input"),
        (_v2([1, 2], [1, 2], outputs=[{"name": "probabilities"}]), "invalid_output"),
    ],
)
def test_bad_v2_payloads_are_400(payload, code):
    with pytest.raises(ApiError) as caught:
        decode_v2(payload, 2)
    assert caught.value.status == 400
    assert caught.value.code == code
