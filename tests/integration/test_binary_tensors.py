"""tritonclient, in its default binary mode and in JSON mode, against the real api, broker and worker.

The binary tensor data extension (README, "Binary tensors"): answers equal
the booster's own predict whichever way the tensors travel.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def client(stack) -> Iterator[triton.InferenceServerClient]:
    """A tritonclient HTTP client for the shared api."""
    client = triton.InferenceServerClient(stack.url.removeprefix("http://"), network_timeout=60.0)
    yield client
    client.close()


@pytest.fixture
def auth(keys) -> dict[str, str]:
    """tritonclient has no key option: the header goes with each call."""
    return {"Authorization": f"Bearer {keys.full}"}


def _input(rows: np.ndarray, binary: bool) -> triton.InferInput:
    datatype = {np.float32: "FP32", np.float64: "FP64"}[rows.dtype.type]
    tensor = triton.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


@pytest.mark.parametrize("name", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize(
    ("binary_in", "binary_out"),
    [(True, True), (False, True), (True, False), (False, False)],
    ids=["binary", "json-in-binary-out", "binary-in-json-out", "json"],
)
def test_tritonclient_predictions_equal_the_models_own_predict(
    client, auth, models, name, binary_in, binary_out
):
    model = models[name]
    rows = model.rows[20:27]
    result = client.infer(
        name,
        [_input(rows, binary_in)],
        outputs=[triton.InferRequestedOutput("predict", binary_data=binary_out)],
        request_id="triton-1",
        headers=auth,
    )
    expected = model.expected(rows)
    got = result.as_numpy("predict")
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.astype(np.float32), expected)
    response = result.get_response()
    assert (response["id"], response["model_name"], response["model_version"]) == (
        "triton-1",
        name,
        model.version,
    )
    output = response["outputs"][0]
    # A binary output carries its size instead of data; a JSON one its data.
    assert ("data" in output) is not binary_out
    assert ("binary_data_size" in output.get("parameters", {})) is binary_out


def test_tritonclients_defaults_ask_for_binary_outputs_and_get_them(client, auth, models):
    model = models["binary"]
    rows = model.rows[:5]
    # No outputs named: tritonclient sets binary_data_output on the request.
    result = client.infer("binary", [_input(rows, True)], headers=auth)
    np.testing.assert_array_equal(result.as_numpy("predict"), model.expected(rows))
    assert result.get_response()["outputs"][0]["parameters"] == {"binary_data_size": 4 * len(rows)}


def test_a_pinned_version_and_fp64_binary_inputs_answer_with_that_version(client, auth, models):
    staging = models["binary-staging"]
    rows = staging.rows[:6]
    result = client.infer(
        "binary", [_input(rows.astype(np.float64), True)], model_version=staging.version, headers=auth
    )
    np.testing.assert_array_equal(result.as_numpy("predict"), staging.expected(rows))
    assert not np.array_equal(result.as_numpy("predict"), models["binary"].expected(rows))
    assert result.get_response()["model_version"] == staging.version


def test_tritonclient_gets_the_apis_clear_400s(client, auth, models):
    rows = models["binary"].rows[:2, :29]
    with pytest.raises(InferenceServerException) as caught:
        client.infer("binary", [_input(rows, True)], headers=auth)
    assert caught.value.status() == "400"
    assert caught.value.message() == "input 'input-0': the model expects 30 features per row, got 29"
    with pytest.raises(InferenceServerException) as caught:
        client.infer("binary", [_input(models["binary"].rows[:1], True)], headers={})
    assert caught.value.status() == "401"


def _framed(rows: np.ndarray, **request) -> tuple[bytes, str]:
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ],
            **request,
        }
    )
    return head + rows.astype("<f4").tobytes(), str(len(head))


def test_a_hand_built_framed_request_gets_a_framed_answer(api, models):
    model = models["multiclass"]
    rows = model.rows[:3]
    body, length = _framed(rows, parameters={"binary_data_output": True})
    response = api.post(
        f"{api.base}/v2/models/multiclass/infer",
        data=body,
        headers={"Content-Type": "application/octet-stream", HEADER: length},
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Request-ID"]
    assert response.headers["X-Model-Version"] == model.version
    split = int(response.headers[HEADER])
    head = orjson.loads(response.content[:split])
    expected = model.expected(rows)
    assert head["outputs"] == [
        {
            "name": "predict",
            "datatype": "FP32",
            "shape": list(expected.shape),
            "parameters": {"binary_data_size": expected.size * 4},
        }
    ]
    values = struct.unpack(f"<{expected.size}f", response.content[split:])
    np.testing.assert_array_equal(np.asarray(values, dtype=np.float32).reshape(expected.shape), expected)


def test_malformed_framed_requests_are_400s_in_the_v2_format(api, models):
    rows = models["binary"].rows[:2].copy()
    url = f"{api.base}/v2/models/binary/infer"
    body, length = _framed(rows)
    rows[1, 3] = np.nan
    with_nan, nan_length = _framed(rows)
    cases = [
        (body, str(len(body) + 5), f"{HEADER} is {len(body) + 5} but the body is only {len(body)} bytes"),
        (body, "x12", f"{HEADER} must be a non-negative integer, got 'x12'"),
        (body[:-4], length, "binary_data_size is 240 bytes but only 236 bytes of binary data remain"),
        (body + b"\0\0", length, "2 bytes of binary data follow the last binary input"),
        (with_nan, nan_length, "input 'input-0' must contain only finite numbers"),
    ]
    for data, header, message in cases:
        response = api.post(
            url, data=data, headers={"Content-Type": "application/octet-stream", HEADER: header}
        )
        assert response.status_code == 400, (message, response.text)
        assert message in response.json()["error"]


def test_a_binary_output_flag_that_is_not_a_boolean_is_a_400(api, models):
    rows = models["binary"].rows[:1]
    body, length = _framed(rows, outputs=[{"name": "predict", "parameters": {"binary_data": "yes"}}])
    response = api.post(
        f"{api.base}/v2/models/binary/infer",
        data=body,
        headers={"Content-Type": "application/octet-stream", HEADER: length},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "outputs.0.parameters.binary_data must be true or false, got 'yes'"}
