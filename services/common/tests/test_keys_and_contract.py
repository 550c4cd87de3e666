"""API key format and the message contract."""

from __future__ import annotations

import time
import uuid

import pytest
from pydantic import ValidationError

from inference_common.contract import JobChunk, PredictReply, PredictRequest, Queues, reply_body
from inference_common.keys import generate_key, hash_key, parse_prefix, parse_scopes, verify_key


def test_a_generated_key_verifies_and_exposes_only_its_prefix():
    key = generate_key()
    assert key.raw.startswith(f"ipk_{key.prefix}_")
    assert parse_prefix(key.raw) == key.prefix
    assert key.digest == hash_key(key.raw)
    assert key.prefix not in key.digest
    assert verify_key(key.raw, key.digest)
    assert not verify_key(key.raw + "x", key.digest)
    assert generate_key().raw != key.raw


@pytest.mark.parametrize("raw", ["", "ipk", "abc_12345678_x", "ipk_123_x", "ipk_12345678_"])
def test_malformed_keys_have_no_prefix(raw):
    assert parse_prefix(raw) is None


def test_scopes_are_validated():
    assert parse_scopes("jobs, predict,predict") == ["jobs", "predict"]
    with pytest.raises(ValueError, match="unknown scope"):
        parse_scopes("predict,admin")
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes(" , ")


def _request(**overrides):
    fields = {
        "request_id": "r1",
        "model": "m",
        "version": "1",
        "model_version_id": 1,
        "n_features": 2,
        "rows": [[1.0, 2.0]],
        "enqueued_at": time.time(),
    }
    return {**fields, **overrides}


def test_a_predict_request_round_trips():
    message = PredictRequest.model_validate(_request())
    assert PredictRequest.model_validate(message.model_dump(mode="json")) == message


@pytest.mark.parametrize(
    "overrides",
    [
        {"rows": [[float("nan"), 1.0]]},
        {"rows": [[float("inf"), 1.0]]},
        {"rows": []},
        {"surprise": 1},
        {"n_features": 0},
        {"protocol": "v3"},
    ],
)
def test_a_malformed_predict_request_is_refused(overrides):
    with pytest.raises(ValidationError):
        PredictRequest.model_validate(_request(**overrides))


def test_a_job_chunk_carries_its_job_and_position():
    job = uuid.uuid4()
    fields = {k: v for k, v in _request().items() if k != "request_id"}
    chunk = JobChunk.model_validate({**fields, "job_id": str(job), "chunk_index": 3, "row_offset": 300})
    assert chunk.job_id == job
    assert chunk.row_offset == 300


def test_queue_names_derive_from_one_prefix():
    queues = Queues("it-1")
    assert (queues.predict, queues.jobs, queues.dead_letter) == ("it-1.predict", "it-1.jobs", "it-1.dlq")
    assert queues.dead_letter_exchange == "it-1.dlx"
    assert queues.reply("host.1") == "it-1.reply.host.1"


def test_a_reply_serialises_to_plain_json():
    body = reply_body(PredictReply(request_id="r", outputs=[0.5], shape=[1]))
    assert body["outputs"] == [0.5]
    assert body["error"] is None
