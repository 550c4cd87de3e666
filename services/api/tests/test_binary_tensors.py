"""The binary tensor data extension: framed bodies decode exactly as their JSON twins, or get a clear 400."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from flask import Flask
from sqlalchemy import Engine
from tritonclient.http import InferResult

from inference_api import create_app
from inference_api.binary_tensors import (
    HEADER,
    MEDIA_TYPE,
    framed_response,
    split_body,
    wants_binary_output,
)
from inference_api.decoding import NUMERIC_DATATYPES, InferRequest, decode_v2
from inference_api.errors import ApiError
from inference_common.contract import PredictRequest, Queues

V2 = "/v2/models/iris/infer"


def _request(datatype: str, shape: list[int], size: int | None, **extra) -> dict:
    tensor: dict = {"name": "x", "shape": shape, "datatype": datatype}
    if size is not None:
        tensor["parameters"] = {"binary_data_size": size}
    return {"inputs": [tensor], **extra}


def _frame(request: dict, binary: bytes = b"") -> tuple[bytes, str]:
    """A framed body and its header value, as tritonclient builds them."""
    head = orjson.dumps(request)
    return head + binary, str(len(head))


def _decode(request: dict, binary: bytes = b"", n_features: int = 2, header: str | None = None):
    body, length = _frame(request, binary)
    head, section = split_body(body, length if header is None else header)
    return decode_v2(orjson.loads(head), n_features, section)


def _binary(values: np.ndarray, datatype: str, **extra):
    """Decode ``values`` sent as binary data in ``datatype``."""
    raw = values.astype(values.dtype.newbyteorder("<")).tobytes()
    return _decode(_request(datatype, list(values.shape), len(raw), **extra), raw, values.shape[1])


def _refused(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 400
    return caught.value


# -- decoding ---------------------------------------------------------------------
def test_a_framed_fp32_tensor_decodes_exactly():
    values = np.array([[0.1, -2.5], [3.4e38, 1e-30]], dtype=np.float32)
    parsed, matrix = _binary(values, "FP32", id="req-7")
    assert parsed.id == "req-7"
    assert matrix.shape == (2, 2)
    np.testing.assert_array_equal(matrix, values)


def test_binary_data_is_read_little_endian_whatever_the_host():
    raw = struct.pack("<4f", 1.5, -2.0, 3.25, 4.0)
    matrix = _decode(_request("FP32", [2, 2], 16), raw)[1]
    assert matrix.tolist() == [[1.5, -2.0], [3.25, 4.0]]
    big_endian = struct.pack(">4f", 1.5, -2.0, 3.25, 4.0)
    assert _decode(_request("FP32", [2, 2], 16), big_endian)[1].tolist() != [[1.5, -2.0], [3.25, 4.0]]


def _edge_values(datatype: str) -> np.ndarray:
    numpy_type = np.dtype(datatype.replace("FP", "float").lower())
    if numpy_type.kind == "f":
        # Exact in every float width, so the JSON twin carries the same numbers.
        return np.array([[0.5, -2.25], [1024.0, 0.0]], dtype=numpy_type)
    # JSON (numpy's reading of it) tops out at the int64 maximum, even for UINT64.
    high = min(int(np.iinfo(numpy_type).max), 2**63 - 1)
    return np.array([[np.iinfo(numpy_type).min, high], [0, 1]], dtype=numpy_type)


@pytest.mark.parametrize("datatype", list(NUMERIC_DATATYPES))
def test_every_numeric_datatype_gives_the_rows_its_json_twin_gives(datatype):
    values = _edge_values(datatype)
    json_twin = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": datatype, "data": values.tolist()}]}
    from_json = decode_v2(json_twin, 2)[1]
    from_binary = _binary(values, datatype)[1]
    # The message to the worker carries matrix.tolist(): equal lists, equal answers.
    assert from_binary.tolist() == from_json.tolist()
    assert from_binary.dtype == values.dtype


def test_fp32_values_reach_the_worker_as_the_same_float32_numbers():
    values = np.random.default_rng(7).normal(size=(5, 3)).astype(np.float32)
    from_binary = _binary(values, "FP32")[1]
    json_twin = {"inputs": [{"name": "x", "shape": [5, 3], "datatype": "FP32", "data": values.tolist()}]}
    from_json = decode_v2(json_twin, 3)[1]
    # The worker casts rows to float32 (batching.py): both forms land on the same bits.
    as_worker_sees = [np.asarray(m.tolist(), dtype=np.float32) for m in (from_binary, from_json)]
    assert as_worker_sees[0].tobytes() == as_worker_sees[1].tobytes() == values.tobytes()


def test_64_bit_integers_are_kept_exact():
    big = 2**53 + 1  # not representable as float64
    assert _binary(np.array([[big, -7]], dtype=np.int64), "INT64")[1].tolist() == [[big, -7]]
    top = 2**64 - 1
    assert _binary(np.array([[top, 0]], dtype=np.uint64), "UINT64")[1].tolist() == [[top, 0]]


def test_a_framed_body_may_carry_a_json_input_and_no_binary_bytes():
    request = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    assert _decode(request)[1].tolist() == [[1, 2]]


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "1.5", "", "5_0", "1e3", "\u0663", "9" * 19])
def test_a_header_that_is_not_a_plain_integer_is_refused(value):
    error = _refused(_decode, _request("FP32", [1, 2], 8), b"\0" * 8, header=value)
    assert error.code == "invalid_binary_data"
    assert error.message.startswith(f"{HEADER} must be a non-negative integer")


def test_a_header_larger_than_the_body_is_refused():
    body, _ = _frame(_request("FP32", [1, 2], 8), b"\0" * 8)
    error = _refused(split_body, body, str(len(body) + 1))
    assert error.code == "invalid_binary_data"
    assert error.message == f"{HEADER} is {len(body) + 1} but the body is only {len(body)} bytes"


def test_a_size_that_does_not_match_shape_and_datatype_is_refused():
    error = _refused(_decode, _request("FP32", [2, 2], 12), b"\0" * 12)
    assert error.code == "invalid_binary_data"
    assert error.message == (
        "input 'x': binary_data_size is 12 bytes but shape [2, 2] of FP32 needs 16 (4 values of 4 bytes)"
    )
    # The same byte count is right for INT32 [2, 2] but not for FP64 [2, 2].
    assert _decode(_request("INT32", [2, 2], 16), b"\0" * 16)[1].tolist() == [[0, 0], [0, 0]]
    assert "needs 32" in _refused(_decode, _request("FP64", [2, 2], 16), b"\0" * 16).message


def test_missing_bytes_are_refused():
    error = _refused(_decode, _request("FP32", [2, 2], 16), b"\0" * 10)
    assert error.code == "invalid_binary_data"
    assert error.message == "input 'x': binary_data_size is 16 bytes but only 10 bytes of binary data remain"


def test_leftover_bytes_are_refused():
    error = _refused(_decode, _request("FP32", [1, 2], 8), b"\0" * 9)
    assert error.code == "invalid_binary_data"
    assert error.message.startswith("1 bytes of binary data follow the last binary input")
    json_input = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    assert _refused(_decode, json_input, b"\0" * 4).code == "invalid_binary_data"


def test_both_data_and_a_binary_size_are_refused():
    request = _request("FP32", [1, 2], 8)
    request["inputs"][0]["data"] = [1.0, 2.0]
    error = _refused(_decode, request, b"\0" * 8)
    assert (error.code, error.message) == (
        "invalid_input",
        "input 'x' has both 'data' and parameters.binary_data_size; send its values once",
    )


def test_a_binary_size_without_a_binary_section_points_to_the_header():
    error = _refused(decode_v2, _request("FP32", [1, 2], 8), 2)
    assert error.code == "invalid_binary_data"
    assert HEADER in error.message


def test_an_input_with_neither_data_nor_a_binary_size_is_refused():
    error = _refused(decode_v2, _request("FP32", [1, 2], None), 2)
    assert (error.code, error.message) == (
        "invalid_input",
        "input 'x' has no 'data' (and no parameters.binary_data_size)",
    )


@pytest.mark.parametrize("size", [True, "8", -8, 8.0, None, [8]])
def test_a_binary_size_that_is_not_a_non_negative_integer_is_refused(size):
    request = _request("FP32", [1, 2], 8)
    request["inputs"][0]["parameters"]["binary_data_size"] = size
    error = _refused(_decode, request, b"\0" * 8)
    assert error.code == "invalid_binary_data"
    assert "parameters.binary_data_size must be a non-negative integer" in error.message


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_as_in_json(datatype, bad):
    values = np.array([[1.0, bad]], dtype=np.dtype(datatype.replace("FP", "float").lower()))
    error = _refused(_binary, values, datatype)
    assert (error.code, error.message) == ("invalid_input", "input 'x' must contain only finite numbers")


def test_fp64_beyond_float32_is_refused_as_in_json():
    error = _refused(_binary, np.array([[1.0, 1e300]]), "FP64")
    assert (error.code, error.message) == ("invalid_input", "input 'x' has values outside the float32 range")
    json_twin = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 1e300]}]}
    assert _refused(decode_v2, json_twin, 2).message == error.message


@pytest.mark.parametrize("datatype", ["BYTES", "BOOL", "BF16"])
def test_non_numeric_datatypes_are_refused_as_in_json(datatype):
    error = _refused(_decode, _request(datatype, [1, 2], 2), b"\0\1")
    assert error.code == "invalid_datatype"
    assert repr(datatype) in error.message


def test_the_json_paths_shape_rules_hold_for_binary_inputs():
    assert _refused(_decode, _request("FP32", [1, 3], 12), b"\0" * 12).code == "wrong_feature_count"
    assert _refused(_decode, _request("FP32", [0, 2], 0)).message == "input 'x': at least one row is required"
    assert _refused(_decode, _request("FP32", [4], 16), b"\0" * 16).code == "invalid_shape"
    assert _refused(_decode, _request("FP32", [1, 2], 8, outputs=[{"name": "p"}]), b"\0" * 8).code == (
        "invalid_output"
    )


def test_a_huge_declared_shape_is_refused_without_allocating():
    error = _refused(_decode, _request("FP32", [2**62, 2], 16), b"\0" * 16)
    assert error.code == "invalid_binary_data"


def test_decoding_reads_the_body_in_place():
    values = np.arange(6, dtype=np.float32).reshape(3, 2)
    matrix = _binary(values, "FP32")[1]
    # frombuffer: a read-only view of the request body, no per-value copy.
    assert not matrix.flags.writeable
    assert not matrix.flags.owndata


# -- output selection -------------------------------------------------------------
def _infer_request(**extra) -> InferRequest:
    return InferRequest.model_validate(_request("FP32", [1, 2], 8, **extra))


@pytest.mark.parametrize(
    ("extra", "binary"),
    [
        ({}, False),
        ({"parameters": {"binary_data_output": True}}, True),
        ({"parameters": {"binary_data_output": False}}, False),
        ({"outputs": [{"name": "predict"}]}, False),
        ({"outputs": [{"name": "predict", "parameters": {"binary_data": True}}]}, True),
        ({"outputs": [{"name": "predict", "parameters": {"binary_data": False}}]}, False),
        ({"parameters": {"binary_data_output": True}, "outputs": [{"name": "predict"}]}, True),
        (
            {
                "parameters": {"binary_data_output": True},
                "outputs": [{"name": "predict", "parameters": {"binary_data": False}}],
            },
            False,
        ),
    ],
)
def test_binary_output_follows_the_request_default_unless_the_output_says_otherwise(extra, binary):
    assert wants_binary_output(_infer_request(**extra)) is binary


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"parameters": {"binary_data_output": "yes"}}, "parameters.binary_data_output"),
        (
            {"outputs": [{"name": "predict", "parameters": {"binary_data": 1}}]},
            "outputs.0.parameters.binary_data",
        ),
    ],
)
def test_a_binary_output_flag_that_is_not_a_boolean_is_refused(extra, where):
    error = _refused(wants_binary_output, _infer_request(**extra))
    assert error.code == "invalid_input"
    assert error.message.startswith(f"{where} must be true or false")


# -- framed answers ---------------------------------------------------------------
def _answer(values: list[float], shape: list[int]):
    output = {"name": "predict", "datatype": "FP32", "shape": shape}
    body = {"model_name": "iris", "model_version": "1", "id": "r1", "outputs": [output]}
    return framed_response(body, output, values, {"X-Request-ID": "r1"})


def test_a_framed_answer_is_the_json_header_then_little_endian_fp32():
    values = [0.25, 0.5, 0.125, 0.875, 1.0, 0.0]
    response = _answer(values, [2, 3])
    assert response.mimetype == MEDIA_TYPE
    assert response.headers["X-Request-ID"] == "r1"
    length = int(response.headers[HEADER])
    head = orjson.loads(response.data[:length])
    assert head["outputs"] == [
        {"name": "predict", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 24}}
    ]
    assert response.data[length:] == struct.pack("<6f", *values)


def test_tritonclient_reads_a_framed_answer_as_the_json_answer_would_give():
    # Worker outputs are float32 values carried as Python floats.
    values = np.random.default_rng(3).random(12).astype(np.float32).tolist()
    response = _answer(values, [4, 3])
    result = InferResult.from_response_body(response.data, header_length=int(response.headers[HEADER]))
    got = result.as_numpy("predict")
    assert got.dtype == np.float32
    assert got.shape == (4, 3)
    # What a JSON client reads from the "data" list, cast to the declared FP32.
    from_json = np.asarray(values, dtype=np.float32).reshape(4, 3)
    assert got.tobytes() == from_json.tobytes()
    assert result.get_response()["id"] == "r1"


# -- through the app (refused, or stopped by the row limit, before any publish) ---
def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _post(client, body: bytes, key: str, content_type: str | None, header: str | None):
    headers = _auth(key)
    if header is not None:
        headers[HEADER] = header
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post(V2, data=body, headers=headers)


def _rows_body(rows: int) -> tuple[bytes, str]:
    values = np.full((rows, 4), 0.5, dtype="<f4")
    return _frame(_request("FP32", [rows, 4], values.nbytes), values.tobytes())


@pytest.mark.parametrize("content_type", [MEDIA_TYPE, None, "application/json"])
def test_a_framed_request_is_decoded_with_any_content_type_clients_send(client, keys, content_type):
    body, length = _rows_body(4)
    response = _post(client, body, keys.full, content_type, length)
    # Four valid rows reach the sync row limit (3 here), which is checked just before publishing.
    assert response.status_code == 413, response.get_data(as_text=True)
    assert response.get_json()["error"].startswith("4 rows exceed the sync limit of 3")


def test_a_json_request_without_a_content_type_is_taken_as_json_as_tritonclient_sends_it(client, keys):
    body = orjson.dumps({"inputs": [{"name": "x", "shape": [4, 4], "datatype": "FP32", "data": [0.5] * 16}]})
    response = _post(client, body, keys.full, None, None)
    assert response.status_code == 413
    assert response.get_json()["error"].startswith("4 rows exceed the sync limit of 3")


def test_framing_errors_are_v2_errors(client, keys):
    body, length = _rows_body(1)
    cases = [
        (_post(client, body, keys.full, MEDIA_TYPE, str(len(body) + 1)), f"{HEADER} is {len(body) + 1}"),
        (_post(client, body, keys.full, MEDIA_TYPE, "twelve"), f"{HEADER} must be a non-negative integer"),
        (_post(client, body, keys.full, MEDIA_TYPE, str(int(length) - 1)), "malformed JSON"),
        (_post(client, body[:-1], keys.full, MEDIA_TYPE, length), "only 15 bytes of binary data remain"),
        (_post(client, body + b"\0", keys.full, MEDIA_TYPE, length), "1 bytes of binary data follow"),
        (_post(client, body, keys.full, MEDIA_TYPE, None), f"needs the {HEADER} header"),
    ]
    for response, needle in cases:
        assert response.status_code == 400
        assert response.mimetype == "application/json"
        assert set(response.get_json()) == {"error"}
        assert needle in response.get_json()["error"]


def test_a_framed_request_with_another_content_type_is_a_415(client, keys):
    body, length = _rows_body(1)
    response = _post(client, body, keys.full, "text/csv", length)
    assert response.status_code == 415
    assert response.get_json()["error"] == (
        f"Content-Type must be {MEDIA_TYPE} (or application/json) with the {HEADER} header, got text/csv"
    )


def test_the_body_size_limit_covers_the_binary_section(client, keys):
    values = np.zeros(1100, dtype="<f4")  # 4400 bytes: over the 4096 limit of the test app
    body, length = _frame(_request("FP32", [275, 4], values.nbytes), values.tobytes())
    response = _post(client, body, keys.full, MEDIA_TYPE, length)
    assert response.status_code == 413
    assert "the limit is 4096" in response.get_json()["error"]


def test_a_bad_binary_output_flag_is_refused_before_publishing(client, keys):
    values = np.full((1, 4), 0.5, dtype="<f4")
    request = _request("FP32", [1, 4], 16, parameters={"binary_data_output": "yes"})
    body, length = _frame(request, values.tobytes())
    response = _post(client, body, keys.full, MEDIA_TYPE, length)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("parameters.binary_data_output must be true or false")


# -- what reaches the worker ------------------------------------------------------
@pytest.fixture
def waiting_app(engine: Engine, tmp_path) -> Iterator[Flask]:
    """An api whose messages stay on the file broker (no worker), giving up after 0.2 s."""
    app = create_app(
        {
            "database_url": str(engine.url),
            "broker_url": f"filesystem://{tmp_path}/broker",
            "cache_ttl_s": 0.0,
            "sync_timeout_s": 0.2,
            "queues": Queues("binary-test"),
        }
    )
    yield app
    app.extensions["inference"].dispatcher.close()


def _published_rows(published) -> list[np.ndarray]:
    """The rows of each published request, read through the contract as the worker reads them."""
    requests = [request for request, _ in published("binary-test")]
    for request in requests:
        assert "rows" not in request, "the api publishes rows as float32 bytes (rows_b64)"
    return [PredictRequest.model_validate(request).matrix() for request in requests]


def test_a_framed_request_publishes_the_rows_its_json_twin_publishes(waiting_app, keys, published):
    values = np.random.default_rng(11).normal(size=(2, 4)).astype(np.float32)
    client = waiting_app.test_client()
    framed, length = _frame(_request("FP32", [2, 4], values.nbytes), values.astype("<f4").tobytes())
    as_json = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": values.tolist()}]}
    # No worker: each waits 0.2 s and gets a 504, after publishing.
    assert _post(client, framed, keys.full, MEDIA_TYPE, length).status_code == 504
    assert client.post(V2, json=as_json, headers=_auth(keys.full)).status_code == 504
    first, second = _published_rows(published)
    assert first.tobytes() == second.tobytes() == values.tobytes()


def test_v1_numbers_are_published_as_the_float32_rows_the_model_sees(waiting_app, keys, published):
    # JSON integers and float64 values: the message holds them as float32, as the model reads them.
    instances = [[1, 2, 3, 16777217], [0.1, -2.5e-8, 3.4028234e38, 1e-45]]
    response = waiting_app.test_client().post(
        "/v1/models/iris:predict", json={"instances": instances}, headers=_auth(keys.full)
    )
    assert response.status_code == 504
    [published] = _published_rows(published)
    assert published.tobytes() == np.asarray(instances, dtype=np.float32).tobytes()
