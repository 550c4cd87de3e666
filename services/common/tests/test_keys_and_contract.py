"""API key format and the message contract."""

from __future__ import annotations

import time
import uuid

import pytest
from pydantic import ValidationError

from inference_common.contract import JobChunk, PredictReply, PredictRequest, Queues, reply_body
from inference_common.keys import generate_key, hash_key, parse_prefix, parse_scopes, verify_key
from inference_common.schema import (
    ROUTE_CANARY,
    ROUTE_JOB,
    ROUTE_PINNED,
    ROUTE_PRODUCTION,
    ROUTE_SHADOW,
    ROUTES,
)


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


def test_keys_are_compared_in_constant_time(monkeypatch):
    import hmac

    from inference_common import keys as keys_module

    real = hmac.compare_digest
    calls = []

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    key = generate_key()
    assert verify_key(key.raw, key.digest) is True
    assert verify_key("ipk_00000000_wrong", key.digest) is False
    assert calls == [(key.digest, key.digest), (hash_key("ipk_00000000_wrong"), key.digest)]


def test_a_key_is_stored_as_the_hex_sha256_of_its_full_text():
    assert hash_key("ipk_abcdef01_s") == "8a36bc7c68cfc13a6f1d1ab4f8c2a7b494e215c83b15fb95f5d87a432db1e3cc"


def test_a_generated_key_has_an_8_hex_prefix_and_a_long_secret():
    key = generate_key()
    marker, prefix, secret = key.raw.split("_", 2)
    assert marker == "ipk"
    assert len(prefix) == 8
    int(prefix, 16)
    assert len(secret) >= 43  # token_urlsafe(32): 256 bits


def test_a_secret_may_itself_contain_underscores():
    assert parse_prefix("ipk_0123abcd_a_b_c") == "0123abcd"


@pytest.mark.parametrize("text", ["", ",", " , ", "admin", "predict,jobs,admin", "Predict"])
def test_it_rejects_unknown_or_empty_scopes(text):
    with pytest.raises(ValueError):
        parse_scopes(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("predict,", ["predict"]), (" jobs ", ["jobs"]), ("predict,jobs", ["jobs", "predict"])],
)
def test_it_accepts_known_scopes_with_stray_spaces_and_commas(text, expected):
    assert parse_scopes(text) == expected


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_it_rejects_non_finite_values_anywhere_in_the_rows(bad):
    with pytest.raises(ValidationError, match="finite"):
        PredictRequest.model_validate(_request(rows=[[1.0, 2.0], [3.0, bad]]))


@pytest.mark.parametrize(
    "overrides",
    [
        {"request_id": ""},
        {"model": ""},
        {"request_id": "x" * 65},
        {"rows": [["a", 1.0]]},
        {"rows": [[None, 1.0]]},
    ],
)
def test_it_rejects_empty_oversized_or_non_numeric_fields(overrides):
    with pytest.raises(ValidationError):
        PredictRequest.model_validate(_request(**overrides))


def test_a_predict_request_defaults_to_v2_and_is_immutable():
    message = PredictRequest.model_validate(_request())
    assert message.protocol == "v2"
    assert message.api_key_id is None
    with pytest.raises(ValidationError):
        message.model = "other"


@pytest.mark.parametrize("overrides", [{"chunk_index": -1}, {"row_offset": -1}, {"job_id": "not-a-uuid"}])
def test_it_rejects_a_job_chunk_with_a_bad_position_or_id(overrides):
    fields = {k: v for k, v in _request().items() if k != "request_id"}
    chunk = {**fields, "job_id": str(uuid.uuid4()), "chunk_index": 0, "row_offset": 0, **overrides}
    with pytest.raises(ValidationError):
        JobChunk.model_validate(chunk)


def test_a_reply_refuses_unknown_fields():
    with pytest.raises(ValidationError):
        PredictReply.model_validate({"request_id": "r", "surprise": 1})


def test_the_default_queues_use_the_inference_prefix():
    queues = Queues()
    assert queues.predict == "inference.predict"
    assert queues.jobs == "inference.jobs"
    assert queues.dead_letter_exchange == "inference.dlx"
    assert queues.dead_letter == "inference.dlq"


def test_task_names_and_request_ids_are_stable():
    from inference_common.contract import JOB_CHUNK_TASK, OUTPUT_NAME, PREDICT_TASK, new_request_id

    assert (PREDICT_TASK, JOB_CHUNK_TASK, OUTPUT_NAME) == (
        "inference.predict",
        "inference.predict_chunk",
        "predict",
    )
    first, second = new_request_id(), new_request_id()
    assert len(first) == 32
    assert int(first, 16) >= 0
    assert first != second


def test_a_predict_request_is_routed_to_production_by_default():
    message = PredictRequest.model_validate(_request())
    assert message.route == ROUTE_PRODUCTION
    assert message.shadow_of is None


@pytest.mark.parametrize("route", [ROUTE_PINNED, ROUTE_PRODUCTION, ROUTE_CANARY])
def test_it_accepts_every_primary_route_without_shadow_of(route):
    message = PredictRequest.model_validate(_request(route=route))
    assert PredictRequest.model_validate(message.model_dump(mode="json")).route == route


def test_a_shadow_copy_carries_the_request_id_of_its_primary():
    message = PredictRequest.model_validate(_request(request_id="copy", route=ROUTE_SHADOW, shadow_of="r1"))
    assert (message.route, message.shadow_of) == (ROUTE_SHADOW, "r1")
    assert PredictRequest.model_validate(message.model_dump(mode="json")) == message


@pytest.mark.parametrize(
    "overrides",
    [
        {"route": ROUTE_SHADOW},
        {"route": ROUTE_PRODUCTION, "shadow_of": "r0"},
        {"route": ROUTE_PINNED, "shadow_of": "r0"},
        {"route": ROUTE_SHADOW, "shadow_of": "r1"},
        {"route": ROUTE_SHADOW, "shadow_of": ""},
        {"route": ROUTE_JOB},
        {"route": "mirror"},
    ],
)
def test_it_refuses_inconsistent_routes_and_shadow_ids(overrides):
    with pytest.raises(ValidationError):
        PredictRequest.model_validate(_request(**overrides))


def test_the_sync_routes_of_the_contract_are_the_schemas_routes_except_job():
    from typing import get_args

    from inference_common.contract import SyncRoute

    assert set(get_args(SyncRoute)) == set(ROUTES) - {ROUTE_JOB}


def test_a_job_chunk_has_no_route_field():
    fields = {k: v for k, v in _request().items() if k != "request_id"}
    with pytest.raises(ValidationError):
        JobChunk.model_validate(
            {**fields, "job_id": str(uuid.uuid4()), "chunk_index": 0, "row_offset": 0, "route": "job"}
        )
