"""Decode request bodies into a validated row matrix, or refuse with a clear 4xx.

Every value must be a JSON number (no strings, booleans or nulls) and finite;
the shape must match the model's feature count. A payload is either decoded
exactly or refused: never coerced into a silently wrong answer.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import orjson
from flask import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inference_common.contract import OUTPUT_NAME

from .binary_tensors import (
    FRAMED_MEDIA_TYPES,
    HEADER,
    MEDIA_TYPE,
    BinarySection,
    binary_data_size,
    read_tensor,
    split_body,
)
from .errors import ApiError

FLOAT32_MAX = float(np.finfo(np.float32).max)

_JSON = frozenset({"application/json"})
#: v2 inference also takes a body with no Content-Type as JSON (tritonclient sends none).
_V2_JSON = frozenset({"application/json", ""})

#: v2 datatypes accepted for numeric features, with the numpy kinds they admit.
#: JSON has no unsigned integers: numpy reads small non-negative ones as int64,
#: so the UINT types admit kind "i" too and their range check refuses negatives.
NUMERIC_DATATYPES = {
    "FP16": "fiu",
    "FP32": "fiu",
    "FP64": "fiu",
    "INT8": "iu",
    "INT16": "iu",
    "INT32": "iu",
    "INT64": "iu",
    "UINT8": "iu",
    "UINT16": "iu",
    "UINT32": "iu",
    "UINT64": "iu",
}

#: The numpy type of each datatype, whose range a value must fit.
_NUMPY_TYPES = {name: np.dtype(name.replace("FP", "float").lower()) for name in NUMERIC_DATATYPES}


class InferInput(BaseModel):
    """One input tensor of an Open Inference Protocol v2 request."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(min_length=1, max_length=8)
    datatype: str
    #: Absent when ``parameters.binary_data_size`` puts the values after the JSON (binary_tensors).
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    """An entry of the optional ``outputs`` list of a v2 request."""

    model_config = ConfigDict(extra="allow")

    name: str
    #: ``{"binary_data": true}`` asks for this output as raw bytes (binary_tensors).
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """An Open Inference Protocol v2 inference request."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=256)
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


class V1Request(BaseModel):
    """A KServe v1 / TF-Serving ``:predict`` or jobs request."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Any] = Field(min_length=1)


def _check_media_type(request: Request, allowed: frozenset[str], expected: str) -> None:
    if request.mimetype not in allowed:
        got = request.mimetype or "none"
        raise ApiError(415, "unsupported_media_type", f"Content-Type must be {expected}, got {got}")


def read_json(request: Request, max_bytes: int) -> Any:
    """Parse the body as JSON, enforcing content type and size."""
    _check_media_type(request, _JSON, "application/json")
    return _parse_json(_read_body(request, max_bytes))


def read_v2(request: Request, max_bytes: int) -> tuple[Any, BinarySection | None]:
    """Parse a v2 inference body: plain JSON, or JSON framed with binary tensor data.

    A missing Content-Type is taken as JSON here, as Triton does: tritonclient
    sends none. The size limit covers the whole body, binary section included.
    """
    header = request.headers.get(HEADER)
    if header is None:
        if request.mimetype == MEDIA_TYPE:
            raise ApiError(
                400,
                "invalid_binary_data",
                f"a {MEDIA_TYPE} body needs the {HEADER} header (its JSON part's length)",
            )
        _check_media_type(request, _V2_JSON, f"application/json (or {MEDIA_TYPE} with the {HEADER} header)")
        return _parse_json(_read_body(request, max_bytes)), None
    _check_media_type(
        request, FRAMED_MEDIA_TYPES, f"{MEDIA_TYPE} (or application/json) with the {HEADER} header"
    )
    head, binary = split_body(_read_body(request, max_bytes), header)
    return _parse_json(head), binary


def _read_body(request: Request, max_bytes: int) -> bytes:
    length = request.content_length
    if length is not None and length > max_bytes:
        raise ApiError(413, "payload_too_large", f"request body is {length} bytes; the limit is {max_bytes}")
    if length:
        # One read of the declared length. Werkzeug's get_data() reads 64 KiB at a
        # time, and gunicorn copies what it has read ahead on every such read: a
        # 40 MB job body cost a sixth of a second of copying.
        body = request.environ["wsgi.input"].read(length)
        if len(body) < length:
            raise ApiError(400, "incomplete_body", f"request body ended after {len(body)} of {length} bytes")
        return body
    body = request.get_data(cache=False)  # chunked: no length to read at once
    if len(body) > max_bytes:
        raise ApiError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
    return body


def _parse_json(body: bytes | memoryview) -> Any:
    if not body:
        raise ApiError(400, "invalid_json", "request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"malformed JSON: {exc}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def _numeric_matrix(values: Any, kinds: str, what: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except (ValueError, OverflowError):
        raise ApiError(400, "invalid_input", f"{what} must be a rectangular array of numbers") from None
    if array.dtype.kind not in kinds:
        if array.dtype.kind in "OUS":
            # numpy keeps integers beyond 64 bits as Python objects, too.
            raise ApiError(
                400,
                "invalid_input",
                f"{what} must contain only numbers (found strings or nulls, or integers beyond 64 bits)",
            )
        if array.dtype.kind == "b":
            raise ApiError(400, "invalid_input", f"{what} must contain numbers, not booleans")
        raise ApiError(400, "invalid_input", f"{what} has values of the wrong type for its datatype")
    if _contains_bool(values, array.ndim):
        raise ApiError(400, "invalid_input", f"{what} must contain numbers, not booleans")
    _check_finite(array, what)
    return array


def _check_finite(array: np.ndarray, what: str) -> None:
    """The value rules of both forms (JSON and binary): finite, and within float32."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ApiError(400, "invalid_input", f"{what} must contain only finite numbers")
    # Models see float32; a value beyond its range would silently become inf.
    # .item(): compared as Python numbers (an FP16 array would cast the bound to inf).
    if array.size and np.abs(array).max().item() > FLOAT32_MAX:
        raise ApiError(400, "invalid_input", f"{what} has values outside the float32 range")


def _check_range(array: np.ndarray, datatype: str, what: str) -> None:
    """Refuse values the declared datatype cannot hold (an INT8 of 1000, an FP16 of 1e5)."""
    numpy_type = _NUMPY_TYPES[datatype]
    if not array.size:
        return
    if numpy_type.kind == "f":
        low, high = -float(np.finfo(numpy_type).max), float(np.finfo(numpy_type).max)
    else:
        low, high = np.iinfo(numpy_type).min, np.iinfo(numpy_type).max
    # .item() gives Python numbers: exact comparisons, even for uint64 against a negative bound.
    if array.min().item() < low or array.max().item() > high:
        raise ApiError(400, "invalid_input", f"{what} has values outside the {datatype} range")


def _contains_bool(values: Any, ndim: int) -> bool:
    # numpy silently turns [true, 2] into [1, 2]; JSON booleans are not features.
    # map(type) over the flattened lists runs in C: cheap even for large jobs.
    items: Any = values
    for _ in range(ndim - 1):
        items = chain.from_iterable(items)
    return bool in set(map(type, items))


def _check_features(matrix: np.ndarray, n_features: int, what: str) -> np.ndarray:
    if matrix.ndim != 2 or matrix.shape[1] != n_features:
        got = matrix.shape[1] if matrix.ndim == 2 else "a different shape"
        raise ApiError(
            400, "wrong_feature_count", f"{what}: the model expects {n_features} features per row, got {got}"
        )
    if matrix.shape[0] == 0:
        raise ApiError(400, "invalid_input", f"{what}: at least one row is required")
    return matrix


def decode_v1(payload: Any, n_features: int) -> np.ndarray:
    """``{"instances": [[...], ...]}`` to a float matrix."""
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_input", "the body must be a JSON object with an 'instances' list")
    try:
        request = V1Request.model_validate(payload)
    except ValidationError as exc:
        raise ApiError(400, "invalid_input", _first_error(exc)) from None
    matrix = _numeric_matrix(request.instances, "fiu", "instances")
    if matrix.ndim == 1 and n_features == 1:
        matrix = matrix.reshape(-1, 1)
    return _check_features(matrix, n_features, "instances")


def _tensor_values(tensor: InferInput, kinds: str, binary: BinarySection | None, what: str) -> np.ndarray:
    """The flat values of ``tensor``, from its JSON ``data`` or from the binary section."""
    size = binary_data_size(tensor.parameters, what)
    if size is None:
        if tensor.data is None:
            raise ApiError(400, "invalid_input", f"{what} has no 'data' (and no parameters.binary_data_size)")
        flat = _numeric_matrix(tensor.data, kinds, what).reshape(-1)
        _check_range(flat, tensor.datatype, what)
        return flat
    if tensor.data is not None:
        raise ApiError(
            400,
            "invalid_input",
            f"{what} has both 'data' and parameters.binary_data_size; send its values once",
        )
    # Raw bytes hold exactly their datatype: no type or range checks are needed, only the value rules.
    flat = read_tensor(binary, size, _NUMPY_TYPES[tensor.datatype], tensor.datatype, tensor.shape, what)
    _check_finite(flat, what)
    return flat


def decode_v2(
    payload: Any, n_features: int, binary: BinarySection | None = None
) -> tuple[InferRequest, np.ndarray]:
    """A v2 inference request to (the parsed request, a float matrix).

    ``binary`` is the section after the JSON of a framed body (see
    :func:`read_v2`); inputs with ``parameters.binary_data_size`` read from it.
    """
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_input", "the body must be a JSON object with an 'inputs' list")
    try:
        request = InferRequest.model_validate(payload)
    except ValidationError as exc:
        raise ApiError(400, "invalid_input", _first_error(exc)) from None
    if len(request.inputs) != 1:
        raise ApiError(400, "invalid_input", f"expected exactly one input tensor of shape [N, {n_features}]")
    tensor = request.inputs[0]
    kinds = NUMERIC_DATATYPES.get(tensor.datatype)
    if kinds is None:
        allowed = ", ".join(NUMERIC_DATATYPES)
        raise ApiError(
            400, "invalid_datatype", f"datatype {tensor.datatype!r} is not supported; use one of {allowed}"
        )
    if len(tensor.shape) != 2 or any(dim < 0 for dim in tensor.shape):
        raise ApiError(400, "invalid_shape", f"input shape must be [N, {n_features}], got {tensor.shape}")
    what = f"input '{tensor.name}'"
    flat = _tensor_values(tensor, kinds, binary, what)
    rows, cols = tensor.shape
    # Checked before any reshape: a shape like [2**70, 0] declares no values but
    # cannot be allocated, and would otherwise escape as a numpy error (a 500).
    if cols != n_features:
        raise ApiError(
            400, "wrong_feature_count", f"{what}: the model expects {n_features} features per row, got {cols}"
        )
    if flat.size != rows * cols:
        raise ApiError(
            400,
            "invalid_shape",
            f"input '{tensor.name}' has {flat.size} values but shape {tensor.shape} needs {rows * cols}",
        )
    if request.outputs is not None:
        unknown = [out.name for out in request.outputs if out.name != OUTPUT_NAME]
        if unknown:
            raise ApiError(
                400,
                "invalid_output",
                f"unknown output(s) {unknown}; this model has one output '{OUTPUT_NAME}'",
            )
    if binary is not None:
        binary.check_consumed()
    return request, _check_features(flat.reshape(rows, cols), n_features, f"input '{tensor.name}'")
