"""Property tests: any v1 instances or v2 tensor is decoded exactly or refused with a 4xx.

Float32 semantics: models see float32, so "exactly" means each decoded value,
cast to float32, equals ``np.float32(float(v))`` for the value ``v`` the client
sent (integers and floats alike pass through float64 first, as JSON parsers
do), in the order sent and in the declared shape. A value beyond the float32
range, or beyond the range of the declared v2 datatype, is refused rather
than turned into inf or wrapped around. Nothing else may escape: any other
exception would be a 500.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_api.decoding import FLOAT32_MAX, NUMERIC_DATATYPES, decode_v1, decode_v2
from inference_api.errors import ApiError

SETTINGS = settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

#: Any JSON scalar, with the awkward ones over-represented.
scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-300, max_value=300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
#: Nested lists of scalars, ragged or not, to a small depth.
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=40)
datatypes = st.sampled_from([*NUMERIC_DATATYPES, "BYTES", "BOOL", "fp32", ""])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _expected_float32(values: list[Any]) -> np.ndarray:
    return np.asarray([np.float32(float(v)) for v in values], dtype=np.float32)


def _decodes_or_refuses(call) -> np.ndarray | None:
    """The decoded matrix, or None when refused with a 4xx; any other outcome fails the test."""
    refusal: ApiError | None = None
    try:
        result = call()
    except ApiError as exc:
        refusal = exc
    if refusal is None:
        return result[1] if isinstance(result, tuple) else result
    assert 400 <= refusal.status < 500, (refusal.status, refusal.message)
    assert refusal.message
    return None


def _in_range(value: Any, datatype: str) -> bool:
    if datatype.startswith("FP"):
        limit = float(np.finfo(datatype.replace("FP", "float").lower()).max)
        return math.isfinite(float(value)) and abs(value) <= min(limit, FLOAT32_MAX)
    info = np.iinfo(datatype.lower())
    return isinstance(value, int) and info.min <= value <= info.max


@SETTINGS
@given(instances=nested, n_features=st.integers(min_value=1, max_value=4))
def test_it_decodes_any_v1_instances_exactly_or_refuses_them(instances: Any, n_features: int) -> None:
    matrix = _decodes_or_refuses(lambda: decode_v1({"instances": instances}, n_features))
    if matrix is None:
        return
    # Accepted: a non-empty list of rows of n_features finite, float32-sized numbers (no bools).
    values = _leaves(instances)
    assert all(_is_number(v) and math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in values)
    assert matrix.shape == (len(instances), n_features)
    np.testing.assert_array_equal(matrix.astype(np.float32).reshape(-1), _expected_float32(values))


@SETTINGS
@given(
    rows=st.lists(
        st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=3, max_size=3),
        min_size=1,
        max_size=8,
    )
)
def test_it_accepts_every_rectangular_finite_float32_matrix(rows: list[list[float]]) -> None:
    matrix = decode_v1({"instances": rows}, 3)
    np.testing.assert_array_equal(matrix.astype(np.float32), np.asarray(rows, dtype=np.float32))


@SETTINGS
@given(
    data=st.one_of(nested.filter(lambda value: isinstance(value, list)), st.lists(scalars, max_size=12)),
    shape=st.lists(
        st.one_of(st.integers(min_value=-2, max_value=6), st.integers(min_value=-(2**70), max_value=2**70)),
        min_size=0,
        max_size=4,
    ),
    datatype=datatypes,
    n_features=st.integers(min_value=1, max_value=4),
)
def test_it_decodes_any_v2_tensor_exactly_or_refuses_it(
    data: list[Any], shape: list[int], datatype: str, n_features: int
) -> None:
    payload = {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}
    matrix = _decodes_or_refuses(lambda: decode_v2(payload, n_features))
    if matrix is None:
        return
    values = _leaves(data)
    # Accepted: a supported datatype, shape [N, n_features] with N >= 1 matching the data,
    # and only numbers that the datatype (and float32) can hold.
    assert datatype in NUMERIC_DATATYPES
    assert len(shape) == 2
    assert shape[1] == n_features
    assert shape[0] >= 1
    assert len(values) == shape[0] * shape[1]
    assert all(_is_number(v) and _in_range(v, datatype) for v in values)
    if not datatype.startswith("FP"):
        assert all(isinstance(v, int) for v in values)
    assert matrix.shape == tuple(shape)
    np.testing.assert_array_equal(matrix.astype(np.float32).reshape(-1), _expected_float32(values))


@SETTINGS
@given(
    datatype=st.sampled_from(sorted(NUMERIC_DATATYPES)),
    values=st.lists(st.integers(min_value=-(2**64), max_value=2**64), min_size=2, max_size=2),
)
def test_it_accepts_integers_exactly_when_the_datatype_can_hold_them(
    datatype: str, values: list[int]
) -> None:
    payload = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": datatype, "data": values}]}
    matrix = _decodes_or_refuses(lambda: decode_v2(payload, 2))
    fits = all(_in_range(v, datatype) for v in values) if not datatype.startswith("FP") else None
    # numpy reads a mix beyond int64 as uint64 or objects; within int64 it is always exact.
    if fits is True and all(-(2**63) <= v < 2**63 for v in values):
        assert matrix is not None, (datatype, values)
    if fits is False:
        assert matrix is None, (datatype, values)
    if matrix is not None:
        np.testing.assert_array_equal(matrix.astype(np.float32).reshape(-1), _expected_float32(values))


@pytest.mark.parametrize(
    ("data", "shape", "datatype"),
    [
        ([], [2**70, 0], "FP32"),
        ([], [0, 2**62], "FP32"),
        ([1000, 1], [1, 2], "INT8"),
        ([-1, 1], [1, 2], "UINT8"),
        ([1e5, 1], [1, 2], "FP16"),
        ([2**70, 1], [1, 2], "INT64"),
        ([True, 1], [1, 2], "INT64"),
        (["1", 1], [1, 2], "BYTES"),
    ],
)
def test_it_refuses_tensors_found_by_fuzzing_with_a_400(
    data: list[Any], shape: list[int], datatype: str
) -> None:
    payload = {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}
    with pytest.raises(ApiError) as refused:
        decode_v2(payload, 2)
    assert refused.value.status == 400


def test_it_accepts_small_unsigned_integers_for_uint_datatypes() -> None:
    payload = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "UINT8", "data": [0, 255]}]}
    np.testing.assert_array_equal(decode_v2(payload, 2)[1], [[0, 255]])
