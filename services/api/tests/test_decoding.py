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


def _refused(call, *args) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize("text", ["NaN", "nan", "Infinity", "-inf", "1.5"])
def test_it_rejects_numbers_sent_as_strings(text):
    error = _refused(decode_v1, {"instances": [[text, 1.0]]}, 2)
    assert (error.status, error.code) == (400, "invalid_input")
    assert "found strings or nulls" in error.message
    error = _refused(decode_v2, _v2([text, 1.0], [1, 2]), 2)
    assert (error.status, error.code) == (400, "invalid_input")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([1.0, None], "found strings or nulls"),
        ([1.0, True], "not booleans"),
        ([[1.0, False]], "not booleans"),
        ([[1.0], [2.0, 3.0]], "rectangular"),
        ([1.0, 1e300], "outside the float32 range"),
        ([1.0, -3.5e38], "outside the float32 range"),
        ([{"a": 1}, 2.0], "found strings or nulls"),
    ],
)
def test_it_rejects_bad_v2_values_with_a_clear_message(data, needle):
    error = _refused(decode_v2, _v2(data, [1, 2]), 2)
    assert (error.status, error.code) == (400, "invalid_input")
    assert needle in error.message
    assert error.message.startswith("input 'x'")


def test_it_accepts_the_largest_float32_and_refuses_just_beyond():
    edge = float(np.finfo(np.float32).max)
    np.testing.assert_array_equal(decode_v1({"instances": [[edge, -edge]]}, 2), [[edge, -edge]])
    assert _refused(decode_v1, {"instances": [[edge * 1.0001, 0]]}, 2).code == "invalid_input"


def test_a_boolean_hidden_among_numbers_of_a_one_feature_model_is_refused():
    error = _refused(decode_v1, {"instances": [1.0, True]}, 1)
    assert error.message == "instances must contain numbers, not booleans"


def test_the_wrong_feature_count_names_what_the_model_expects():
    error = _refused(decode_v1, {"instances": [[1, 2, 3]]}, 4)
    assert error.message == "instances: the model expects 4 features per row, got 3"
    error = _refused(decode_v2, _v2([1, 2, 3, 4, 5, 6], [2, 3]), 2)
    assert (error.code, error.message) == (
        "wrong_feature_count",
        "input 'x': the model expects 2 features per row, got 3",
    )


def test_a_v2_shape_that_does_not_match_its_data_is_refused():
    error = _refused(decode_v2, _v2([1, 2, 3, 4], [3, 2]), 2)
    assert error.code == "invalid_shape"
    assert error.message == "input 'x' has 4 values but shape [3, 2] needs 6"


@pytest.mark.parametrize("shape", [[-1, 2], [1, -2], [2, 1, 1], [2]])
def test_it_rejects_negative_or_non_matrix_shapes(shape):
    assert _refused(decode_v2, _v2([1, 2], shape), 2).code == "invalid_shape"


@pytest.mark.parametrize("datatype", ["BYTES", "BOOL", "fp32", "FP128"])
def test_it_rejects_unsupported_datatypes(datatype):
    error = _refused(decode_v2, _v2([1, 2], [1, 2], datatype), 2)
    assert (error.status, error.code) == (400, "invalid_datatype")
    assert repr(datatype) in error.message


def test_it_rejects_more_than_one_input_tensor():
    tensor = _v2([1, 2], [1, 2])["inputs"][0]
    error = _refused(decode_v2, {"inputs": [tensor, {**tensor, "name": "y"}]}, 2)
    assert error.code == "invalid_input"
    assert error.message == "expected exactly one input tensor of shape [N, 2]"


def test_it_rejects_an_unknown_requested_output_but_accepts_predict():
    error = _refused(decode_v2, _v2([1, 2], [1, 2], outputs=[{"name": "predict"}, {"name": "probs"}]), 2)
    assert error.code == "invalid_output"
    assert "['probs']" in error.message
    parsed, matrix = decode_v2(_v2([1, 2], [1, 2], outputs=[{"name": "predict"}]), 2)
    assert parsed.outputs[0].name == "predict"
    np.testing.assert_array_equal(matrix, [[1, 2]])


def test_it_rejects_a_v2_request_with_zero_rows():
    error = _refused(decode_v2, _v2([], [0, 2]), 2)
    assert error.code == "invalid_input"
    assert error.message == "input 'x': at least one row is required"


@pytest.mark.parametrize("payload", [[], "x", None, 3, {"inputs": "x"}, {"inputs": [{"name": "x"}]}])
def test_it_rejects_bodies_that_are_not_v2_requests(payload):
    assert _refused(decode_v2, payload, 2).code == "invalid_input"


def test_integer_datatypes_decode_as_exact_integers():
    big = 2**53 + 1  # not representable as float64: must not be rounded during decoding
    matrix = decode_v2(_v2([big, -7], [1, 2], "INT64"), 2)[1]
    assert matrix.dtype.kind == "i"
    assert matrix.tolist() == [[big, -7]]


def test_float_values_decode_without_rounding():
    values = [0.1, 1e-30, -123456.789, 3.4e38]
    matrix = decode_v1({"instances": [values]}, 4)
    assert matrix.dtype == np.float64
    assert matrix.tolist() == [values]
    assert decode_v2(_v2(values, [2, 2], "FP64"), 2)[1].tolist() == [values[:2], values[2:]]
