"""A micro-batch: one predict call per model version, one reply per request."""

from __future__ import annotations

import time

import numpy as np
import xgboost

from inference_common.contract import PredictReply
from inference_worker.batching import Incoming, serve_batch

TRACE = "0af7651916cd43dd8448eb211c80319c"


def _incoming(request_id: str, model_version_id: int, rows: np.ndarray, traced: bool = False) -> Incoming:
    payload = {
        "request_id": request_id,
        "model": "m",
        "version": "1",
        "model_version_id": model_version_id,
        "n_features": rows.shape[1],
        "rows": rows.tolist(),
        "enqueued_at": time.time(),
    }
    headers = {"traceparent": f"00-{TRACE}-b7ad6b7169203331-01"} if traced else {}
    return Incoming(task_id=request_id, reply_to="reply-q", payload=payload, headers=headers)


class Replies:
    """Collects what the batch sends back, keyed by correlation id."""

    def __init__(self) -> None:
        self.by_id: dict[str, PredictReply] = {}

    def __call__(self, reply_to: str | None, correlation_id: str, reply: PredictReply) -> None:
        assert reply_to == "reply-q"
        self.by_id[correlation_id] = reply


def _rows(n: int, seed: int, features: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, features)).astype(np.float32)


def test_every_request_gets_the_booster_answer_for_its_own_rows(
    engine, store, cache, register_model, train_model
):
    multi = register_model(train_model("multiclass"))
    reg = register_model(train_model("regression", seed=5))
    requests = [_incoming(f"r{i}", multi.id if i % 2 else reg.id, _rows(i + 1, i)) for i in range(6)]
    replies = Replies()
    rows = serve_batch(cache, requests, replies)
    assert len(rows) == 6
    for i, item in enumerate(requests):
        booster = (multi if i % 2 else reg).booster
        inputs = np.asarray(item.payload["rows"], dtype=np.float32)
        expected = booster.predict(xgboost.DMatrix(inputs))
        reply = replies.by_id[f"r{i}"]
        assert reply.error is None
        assert reply.shape == list(expected.shape)
        np.testing.assert_array_equal(
            np.asarray(reply.outputs, dtype=np.float32).reshape(expected.shape), expected
        )
        assert reply.batch_size == 6


def test_a_bad_request_fails_alone(engine, store, cache, register_model, train_model):
    model = register_model(train_model("binary"))
    good = _incoming("good", model.id, _rows(2, 1))
    wrong_width = _incoming("wide", model.id, _rows(2, 2, features=6))
    malformed = Incoming(task_id="junk", reply_to="reply-q", payload={"rows": "nope"})
    replies = Replies()
    records = serve_batch(cache, [good, wrong_width, malformed], replies)
    assert replies.by_id["good"].error is None
    assert replies.by_id["wide"].error_code == "invalid_input"
    assert replies.by_id["junk"].error_code == "invalid_message"
    statuses = {record.request_id: record.status for record in records}
    assert statuses == {"good": "ok", "wide": "error"}


def test_a_model_that_cannot_load_answers_every_request_with_an_error(
    engine, store, cache, register_model, train_model
):
    model = register_model(train_model("binary"))
    model.path.unlink()
    replies = Replies()
    records = serve_batch(
        cache, [_incoming("a", model.id, _rows(1, 1)), _incoming("b", model.id, _rows(1, 2))], replies
    )
    assert {r.error_code for r in replies.by_id.values()} == {"model_load_failed"}
    assert [record.status for record in records] == ["error", "error"]


def test_audit_rows_carry_the_trace_id_from_the_message_headers(
    engine, store, cache, register_model, train_model
):
    model = register_model(train_model("binary"))
    written = []
    records = serve_batch(
        cache,
        [_incoming("t", model.id, _rows(1, 1), traced=True), _incoming("u", model.id, _rows(1, 2))],
        Replies(),
        write=written.extend,
    )
    assert [record.trace_id for record in records] == [TRACE, ""]
    assert written == records
