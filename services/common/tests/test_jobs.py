"""``inference_common.jobs``: the chunk messages the api and the web publish for a job."""

from __future__ import annotations

import itertools
import json
import uuid

import numpy as np
import pytest

from inference_common.contract import JOB_CHUNK_TASK, JobChunk
from inference_common.jobs import (
    chunk_bounds,
    chunk_count,
    chunk_messages,
    encode_outputs,
    stored_outputs,
)


@pytest.mark.parametrize(("rows", "per_chunk", "chunks"), [(1, 10, 1), (10, 10, 1), (11, 10, 2), (25, 3, 9)])
def test_it_counts_chunks_rounding_up(rows: int, per_chunk: int, chunks: int) -> None:
    assert chunk_count(rows, per_chunk) == chunks


def test_it_refuses_a_chunk_size_below_one() -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        chunk_count(5, 0)


@pytest.mark.parametrize(("rows", "per_chunk"), [(1, 1), (7, 3), (10_000, 8192), (100_000, 8192), (299, 37)])
def test_it_splits_rows_into_contiguous_near_equal_chunks(rows: int, per_chunk: int) -> None:
    bounds = chunk_bounds(rows, per_chunk)

    assert len(bounds) == chunk_count(rows, per_chunk)
    assert bounds[0][0] == 0
    assert bounds[-1][1] == rows
    assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(bounds))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) <= per_chunk
    assert max(sizes) - min(sizes) <= 1


def _messages_of(matrix: np.ndarray, job_id: uuid.UUID, **options: object) -> list:
    """The chunk messages of ``matrix`` (2 features) for model version 3, 3 rows a chunk at most."""
    fields = {"model": "m", "version": "1", "model_version_id": 3, "n_features": 2, "chunk_rows": 3}
    return list(chunk_messages(job_id=job_id, matrix=matrix, **fields, **options))


def test_it_splits_rows_into_valid_messages_with_stable_task_ids() -> None:
    job_id = uuid.uuid4()
    matrix = np.arange(14, dtype=np.float32).reshape(7, 2)

    messages = _messages_of(matrix, job_id, enqueued_at=123.0)

    assert [m.task for m in messages] == [JOB_CHUNK_TASK] * 3
    assert [m.task_id for m in messages] == [f"{job_id.hex}-{i}" for i in range(3)]
    chunks = [JobChunk.model_validate(m.kwargs["chunk"]) for m in messages]
    sizes = [(c.chunk_index, c.row_offset, len(c.matrix())) for c in chunks]
    assert sizes == [(0, 0, 2), (1, 2, 2), (2, 4, 3)]
    assert np.array_equal(np.concatenate([c.matrix() for c in chunks]), matrix)
    # Rows travel as raw float32 bytes in a msgpack message, never also as JSON numbers or base64.
    assert {m.serializer for m in messages} == {"msgpack"}
    assert all(set(m.kwargs["chunk"]) & {"rows", "rows_b64", "rows_f32"} == {"rows_f32"} for m in messages)
    assert b"".join(m.kwargs["chunk"]["rows_f32"] for m in messages) == matrix.astype("<f4").tobytes()
    assert {(c.api_key_id, c.enqueued_at, c.model_version_id) for c in chunks} == {(None, 123.0, 3)}


def test_json_chunks_carry_their_rows_as_base64() -> None:
    matrix = np.arange(14, dtype=np.float32).reshape(7, 2)

    messages = _messages_of(matrix, uuid.uuid4(), binary=False)

    assert {m.serializer for m in messages} == {"json"}
    chunks = [JobChunk.model_validate(json.loads(json.dumps(m.kwargs["chunk"]))) for m in messages]
    assert all(c.rows_b64 and c.rows_f32 is None for c in chunks)
    assert np.array_equal(np.concatenate([c.matrix() for c in chunks]), matrix)


def test_stored_outputs_are_float32_bytes_read_back_in_their_shape() -> None:
    outputs = np.array([[0.1, 0.9], [0.3, 0.7]], dtype=np.float32)

    stored = encode_outputs(outputs)

    assert stored == outputs.astype("<f4").tobytes()
    restored = stored_outputs(memoryview(stored), None, [2, 2])
    assert restored.dtype == np.float64
    assert restored.tolist() == outputs.tolist()


def test_chunks_stored_as_json_before_outputs_f32_are_still_read() -> None:
    assert stored_outputs(None, [0.1, 0.2], [2]).tolist() == [0.1, 0.2]
    assert stored_outputs(None, [0.1, 0.9, 0.3, 0.7], [2, 2]).tolist() == [[0.1, 0.9], [0.3, 0.7]]


def test_a_chunk_without_outputs_is_an_error() -> None:
    with pytest.raises(ValueError, match="neither"):
        stored_outputs(None, None, [2])
