"""``JobChunk`` rows as float32 bytes: raw in msgpack messages (``rows_f32``), base64 in JSON ones
(``rows_b64``), and the legacy JSON ``rows`` it still accepts."""

from __future__ import annotations

import base64
import json
import time
import uuid

import msgpack
import numpy as np
import pytest
from kombu.serialization import dumps as kombu_dumps
from kombu.serialization import loads as kombu_loads
from pydantic import ValidationError

from inference_common.contract import JobChunk, decode_rows, encode_rows


def _chunk(**rows: object) -> dict[str, object]:
    return {
        "model": "m",
        "version": "1",
        "model_version_id": 1,
        "n_features": 3,
        "job_id": str(uuid.uuid4()),
        "chunk_index": 0,
        "row_offset": 0,
        "enqueued_at": time.time(),
        **rows,
    }


def test_rows_round_trip_bit_for_bit_through_the_encoding() -> None:
    matrix = np.array(
        [[0.1, -2.5, 3.4028235e38], [1e-45, -0.0, 7.0], [123456.789, -1e-30, 0.3333333]], dtype=np.float32
    )

    decoded = decode_rows(encode_rows(matrix), 3)

    assert decoded.dtype == np.float32
    assert decoded.flags.writeable
    assert decoded.tobytes() == matrix.tobytes()


def test_the_encoding_is_little_endian_float32_row_major() -> None:
    matrix = np.arange(6, dtype=np.float64).reshape(2, 3)

    assert base64.b64decode(encode_rows(matrix)) == np.arange(6, dtype="<f4").tobytes()
    assert base64.b64decode(encode_rows(matrix.astype(">f4"))) == np.arange(6, dtype="<f4").tobytes()


def test_a_chunk_survives_the_json_message_body() -> None:
    matrix = np.random.default_rng(8).standard_normal((50, 3)).astype(np.float32)
    sent = JobChunk.model_validate(_chunk(rows_b64=encode_rows(matrix)))

    body = json.loads(json.dumps(sent.payload()))
    received = JobChunk.model_validate(body)

    assert "rows" not in body
    assert received == sent
    np.testing.assert_array_equal(received.matrix(), matrix)


def test_legacy_json_rows_are_still_served() -> None:
    chunk = JobChunk.model_validate(_chunk(rows=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))

    np.testing.assert_array_equal(chunk.matrix(), np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    assert "rows_b64" not in chunk.payload()


def _b64(values: list[float], dtype: str = "<f4") -> str:
    return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode()


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ({}, "exactly one"),
        ({"rows": [[1.0, 2.0, 3.0]], "rows_b64": _b64([1, 2, 3])}, "exactly one"),
        ({"rows_b64": "not base64!"}, "not valid base64"),
        ({"rows_b64": _b64([1, 2, 3])[:-1]}, "not valid base64"),
        ({"rows_b64": "AAAA\nAAAA"}, "not valid base64"),
        ({"rows_b64": "ÄÖÜ="}, "not valid base64"),
        ({"rows_b64": _b64([1, 2, 3, 4])}, "whole number"),
        ({"rows_b64": _b64([1, 2], dtype="<f8")}, "whole number"),
        ({"rows_b64": ""}, "at least 1 character"),
        ({"rows_b64": _b64([1, float("nan"), 3])}, "NaN or infinite"),
        ({"rows_b64": _b64([1, 2, float("-inf")])}, "NaN or infinite"),
        ({"rows_b64": 12}, "valid string"),
        ({"rows_b64": _b64([1, 2, 3]), "rows_f32": b"\0" * 12}, "exactly one"),
        ({"rows_f32": np.ones(4, dtype="<f4").tobytes()}, "rows_f32 holds 16 bytes"),
        ({"rows_f32": b""}, "at least 1 byte"),
        ({"rows_f32": np.array([1, np.inf, 3], dtype="<f4").tobytes()}, "NaN or infinite"),
        # Bytes only: a JSON message cannot carry them, and a string is not the rows' bytes.
        ({"rows_f32": "AAAA" * 3}, "valid bytes"),
    ],
)
def test_a_malformed_encoding_is_refused_as_a_malformed_message(rows: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        JobChunk.model_validate(_chunk(**rows))


def test_a_binary_chunk_survives_the_msgpack_message_body_kombu_makes() -> None:
    matrix = np.random.default_rng(9).standard_normal((50, 3)).astype(np.float32)
    sent = JobChunk.of_rows(matrix, binary=True, **_fields())

    # What Celery does with serializer="msgpack" on both sides (the api builds the body itself:
    # tests of the api's publisher compare its body with this one).
    content_type, encoding, body = kombu_dumps({"chunk": sent.payload()}, serializer="msgpack")
    decoded = kombu_loads(body, content_type, encoding, accept={content_type})
    received = JobChunk.model_validate(decoded["chunk"])

    assert sent.payload()["rows_f32"] == matrix.tobytes()
    assert "rows_b64" not in sent.payload()
    assert received == sent
    np.testing.assert_array_equal(received.matrix(), matrix)
    assert len(body) < matrix.nbytes + 300  # raw bytes, not base64 (4/3 the size)


def test_msgpack_keeps_bytes_apart_from_strings() -> None:
    # use_bin_type: a str never comes back as bytes, so it cannot pass for rows_f32.
    unpacked = msgpack.unpackb(msgpack.packb({"a": "AAAA", "b": b"AAAA"}, use_bin_type=True))

    assert unpacked == {"a": "AAAA", "b": b"AAAA"}


def test_decoding_refuses_what_validation_refuses() -> None:
    with pytest.raises(ValueError, match="whole number"):
        decode_rows(_b64([1.0, 2.0]), 3)


def _fields(**overrides: object) -> dict[str, object]:
    fields = _chunk()
    fields["job_id"] = uuid.UUID(str(fields["job_id"]))
    return {**fields, **overrides}


def test_a_chunk_made_from_rows_is_what_the_worker_validates() -> None:
    matrix = np.random.default_rng(3).standard_normal((20, 3))

    made = JobChunk.of_rows(matrix, **_fields())
    received = JobChunk.model_validate(json.loads(json.dumps(made.payload())))

    assert made.rows_b64 == encode_rows(matrix)
    assert received == made
    np.testing.assert_array_equal(received.matrix(), matrix.astype(np.float32))


@pytest.mark.parametrize(
    ("matrix", "reason"),
    [
        (np.ones((2, 4)), "rows of 3 values"),
        (np.ones(3), "rows of 3 values"),
        (np.ones((0, 3)), "rows of 3 values"),
        (np.array([[1.0, np.nan, 2.0]]), "NaN or infinite"),
        # Finite as float64, infinite as the float32 the model would see.
        (np.array([[1.0, 1e39, 2.0]]), "NaN or infinite"),
    ],
)
def test_rows_that_break_a_rule_make_no_chunk(matrix: np.ndarray, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        JobChunk.of_rows(matrix, **_fields())


def test_a_chunk_made_from_rows_still_validates_its_other_fields() -> None:
    with pytest.raises(ValidationError, match="chunk_index"):
        JobChunk.of_rows(np.ones((1, 3)), **_fields(chunk_index=-1))
