"""The Open Inference Protocol's binary tensor data extension, as Triton implements it.

A framed body is a JSON inference request of ``Inference-Header-Content-Length``
bytes followed by raw tensor bytes: each input whose ``parameters`` carry
``binary_data_size`` takes that many bytes, in input order, little-endian, row
major, with no padding. Answers are framed the same way when the request asks
for binary outputs (``parameters.binary_data_output`` on the request, or
``parameters.binary_data`` on a requested output, which wins). This is what
tritonclient sends and expects by default; large tensors skip JSON entirely.

This module owns the wire format only (framing, bytes to arrays, framed
answers); :mod:`inference_api.decoding` validates the values the same way for
both forms. Spec: https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from flask import Response

from .errors import ApiError

if TYPE_CHECKING:
    from .decoding import InferRequest

#: Request and response header giving the length of the JSON part of a framed body.
HEADER = "Inference-Header-Content-Length"
#: Content type of framed answers (and of framed requests in the spec's example).
MEDIA_TYPE = "application/octet-stream"
#: Content types a framed request may carry: tritonclient sends none, the spec
#: uses octet-stream, and some clients label the body by its JSON header.
FRAMED_MEDIA_TYPES = frozenset({"", MEDIA_TYPE, "application/json"})

#: Plain ASCII digits only: int() would also take "+5", " 5", "5_0" or non-ASCII digits.
_LENGTH = re.compile(r"[0-9]{1,18}")


def _refuse(message: str) -> ApiError:
    return ApiError(400, "invalid_binary_data", message)


class BinarySection:
    """The raw bytes after the JSON header, handed out to binary inputs in order."""

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._offset = 0

    def take(self, size: int, what: str) -> memoryview:
        """The next ``size`` bytes (no copy), or a 400 if fewer remain."""
        remaining = len(self._data) - self._offset
        if size > remaining:
            raise _refuse(
                f"{what}: binary_data_size is {size} bytes but only {remaining} bytes of binary data remain"
            )
        chunk = self._data[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def check_consumed(self) -> None:
        """Refuse bytes no input claimed: they mean the client framed the body wrongly."""
        leftover = len(self._data) - self._offset
        if leftover:
            raise _refuse(
                f"{leftover} bytes of binary data follow the last binary input; the inputs' "
                f"binary_data_size must add up to the body length minus {HEADER}"
            )


def split_body(body: bytes, header_value: str) -> tuple[memoryview, BinarySection]:
    """Split a framed body into its JSON part and its binary section (no copies)."""
    text = header_value.strip()
    if not _LENGTH.fullmatch(text):
        raise _refuse(f"{HEADER} must be a non-negative integer, got {header_value[:40]!r}")
    length = int(text)
    if length > len(body):
        raise _refuse(f"{HEADER} is {length} but the body is only {len(body)} bytes")
    view = memoryview(body)
    return view[:length], BinarySection(view[length:])


def binary_data_size(parameters: dict[str, Any] | None, what: str) -> int | None:
    """An input's ``binary_data_size`` parameter, or None when its data is in JSON."""
    if not parameters or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    # type() is exact: a JSON true must not pass as the integer 1.
    if type(size) is not int or size < 0:
        raise _refuse(f"{what}: parameters.binary_data_size must be a non-negative integer, got {size!r}")
    return size


def read_tensor(
    section: BinarySection | None, size: int, dtype: np.dtype, datatype: str, shape: Sequence[int], what: str
) -> np.ndarray:
    """The flat values of one binary input, read in place from the section."""
    if section is None:
        raise _refuse(
            f"{what} sets parameters.binary_data_size but the body has no binary data; "
            f"send the JSON request's length in the {HEADER} header, followed by the tensor bytes"
        )
    count = 1
    for dim in shape:
        count *= dim
    # Python ints: a shape like [2**70, 2] is refused here, never allocated.
    needed = count * dtype.itemsize
    if size != needed:
        raise _refuse(
            f"{what}: binary_data_size is {size} bytes but shape {list(shape)} of {datatype} "
            f"needs {needed} ({count} values of {dtype.itemsize} bytes)"
        )
    return np.frombuffer(section.take(size, what), dtype=dtype.newbyteorder("<"))


def _flag(parameters: dict[str, Any] | None, name: str, where: str) -> bool | None:
    if not parameters or name not in parameters:
        return None
    value = parameters[name]
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_input", f"{where}parameters.{name} must be true or false, got {value!r}")
    return value


def wants_binary_output(request: InferRequest) -> bool:
    """Whether the answer's output goes after a JSON header as raw bytes.

    The request-level ``binary_data_output`` is the default; a requested
    output's own ``binary_data`` overrides it (the model has one output, so
    the first entry naming it decides).
    """
    default = _flag(request.parameters, "binary_data_output", "") or False
    if request.outputs:
        chosen = _flag(request.outputs[0].parameters, "binary_data", "outputs.0.")
        if chosen is not None:
            return chosen
    return default


def framed_response(
    body: dict[str, Any], output: dict[str, Any], values: Any, headers: dict[str, str]
) -> Response:
    """``body`` as the JSON header, then ``output``'s values as little-endian FP32 bytes.

    ``output`` is the entry of ``body["outputs"]`` the values belong to: it
    gets ``parameters.binary_data_size`` and no ``data``, as the spec says.
    """
    raw = np.asarray(values, dtype="<f4").tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    head = orjson.dumps(body)
    response = Response(head + raw, status=200, mimetype=MEDIA_TYPE)
    response.headers[HEADER] = str(len(head))
    for name, value in headers.items():
        response.headers[name] = value
    return response
