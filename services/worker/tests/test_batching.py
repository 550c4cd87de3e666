"""A micro-batch: one predict call per model version, one reply per request."""

from __future__ import annotations

import time

import numpy as np
import pytest
import xgboost

from inference_common.contract import PredictReply, PredictRequest, encode_rows
from inference_worker import metrics
from inference_worker.batching import Incoming, carried, serve_batch, trace_id_of

TRACE = "0af7651916cd43dd8448eb211c80319c"


def _incoming(
    request_id: str, model_version_id: int, rows: np.ndarray, traced: bool = False, encoded: bool = True
) -> Incoming:
    """A request as the api publishes it (rows as float32 bytes), or with legacy JSON rows."""
    payload = {
        "request_id": request_id,
        "model": "m",
        "version": "1",
        "model_version_id": model_version_id,
        "n_features": rows.shape[1],
        **({"rows_b64": encode_rows(rows)} if encoded else {"rows": rows.tolist()}),
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


def _sent(item: Incoming) -> np.ndarray:
    """The rows a request carries, read through the contract."""
    return PredictRequest.model_validate(item.payload).matrix()


def test_every_request_gets_the_booster_answer_for_its_own_rows(
    engine, store, cache, register_model, train_model
):
    multi = register_model(train_model("multiclass"))
    reg = register_model(train_model("regression", seed=5))
    # Both encodings in one batch: requests from an older api are served beside the new ones.
    requests = [
        _incoming(f"r{i}", multi.id if i % 2 else reg.id, _rows(i + 1, i), encoded=i < 3) for i in range(6)
    ]
    replies = Replies()
    rows = serve_batch(cache, requests, replies)
    assert len(rows) == 6
    audited = {row.request_id: row.inputs for row in rows}
    for i, item in enumerate(requests):
        booster = (multi if i % 2 else reg).booster
        inputs = _sent(item)
        np.testing.assert_array_equal(inputs, _rows(i + 1, i))
        np.testing.assert_array_equal(audited[f"r{i}"], inputs)
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


@pytest.mark.parametrize(("kind", "per_row"), [("binary", ()), ("multiclass", (3,)), ("regression", ())])
def test_each_objective_answers_exactly_what_the_booster_predicts(
    cache, register_model, train_model, kind, per_row
):
    model = register_model(train_model(kind, seed=3))
    requests = [_incoming(f"r{i}", model.id, _rows(n, 10 + i)) for i, n in enumerate((1, 4, 2))]
    replies = Replies()
    serve_batch(cache, requests, replies)
    for item in requests:
        inputs = _sent(item)
        expected = model.booster.predict(xgboost.DMatrix(inputs))
        assert expected.shape == (len(inputs), *per_row)
        reply = replies.by_id[item.task_id]
        assert reply.request_id == item.task_id
        assert reply.shape == [len(inputs), *per_row]
        got = np.asarray(reply.outputs, dtype=np.float32).reshape(reply.shape)
        assert np.array_equal(got, expected)
        assert reply.device == "cpu"
        assert reply.batch_size == 3


def test_two_versions_in_one_batch_each_answer_with_their_own_model(cache, register_model, train_model):
    first = register_model(train_model("regression", seed=1))
    second = register_model(train_model("regression", seed=2))
    rows = _rows(3, 42)
    replies = Replies()
    serve_batch(cache, [_incoming("a", first.id, rows), _incoming("b", second.id, rows)], replies)
    answer_a = np.asarray(replies.by_id["a"].outputs, dtype=np.float32)
    answer_b = np.asarray(replies.by_id["b"].outputs, dtype=np.float32)
    assert np.array_equal(answer_a, first.booster.predict(xgboost.DMatrix(rows)))
    assert np.array_equal(answer_b, second.booster.predict(xgboost.DMatrix(rows)))
    assert not np.array_equal(answer_a, answer_b)


def test_a_wrong_width_request_gets_invalid_input_and_its_neighbours_still_succeed(
    cache, register_model, train_model
):
    model = register_model(train_model("binary"))
    before, after = _rows(2, 1), _rows(3, 3)
    batch = [
        _incoming("before", model.id, before),
        _incoming("narrow", model.id, _rows(1, 2, features=4)),
        _incoming("after", model.id, after),
    ]
    replies = Replies()
    records = serve_batch(cache, batch, replies)
    narrow = replies.by_id["narrow"]
    assert (narrow.error_code, narrow.error) == ("invalid_input", "expected 5 features per row")
    assert (narrow.outputs, narrow.shape) == ([], [])
    for name, rows in (("before", before), ("after", after)):
        expected = model.booster.predict(xgboost.DMatrix(rows))
        assert np.array_equal(np.asarray(replies.by_id[name].outputs, dtype=np.float32), expected)
    by_id = {record.request_id: record for record in records}
    assert by_id["narrow"].error == "invalid_input: expected 5 features per row"
    assert by_id["narrow"].outputs is None
    assert by_id["after"].status == "ok"
    assert np.array_equal(by_id["after"].outputs, model.booster.predict(xgboost.DMatrix(after)))


def test_ragged_rows_are_invalid_input_not_a_crash(cache, register_model, train_model):
    model = register_model(train_model("binary"))
    ragged = _incoming("ragged", model.id, _rows(2, 1), encoded=False)
    ragged.payload["rows"] = [[0.0] * 5, [0.0] * 4]
    replies = Replies()
    serve_batch(cache, [ragged], replies)
    assert replies.by_id["ragged"].error_code == "invalid_input"


@pytest.mark.parametrize(
    ("rows_b64", "features"),
    [
        ("not base64!", 5),
        (encode_rows(np.ones((2, 5)))[:-2], 5),
        # 10 values are no whole number of rows of 3: refused before any model is asked.
        (encode_rows(np.ones((2, 5))), 3),
        (encode_rows(np.array([[0.0, 1.0, np.inf, 2.0, 3.0]])), 5),
        (encode_rows(np.array([[0.0, 1.0, np.nan, 2.0, 3.0]])), 5),
    ],
)
def test_a_malformed_encoding_is_refused_and_dead_lettered_as_malformed(
    cache, register_model, train_model, rows_b64, features
):
    model = register_model(train_model("binary"))
    good = _incoming("good", model.id, _rows(1, 1))
    garbled = _incoming("garbled", model.id, _rows(1, 1))
    garbled.payload.update(rows_b64=rows_b64, n_features=features)
    replies = Replies()
    poisoned: dict[str, str] = {}
    records = serve_batch(cache, [garbled, good], replies, dead_letter=poisoned.__setitem__)
    assert (replies.by_id["garbled"].error_code, replies.by_id["garbled"].error) == (
        "invalid_message",
        "malformed message",
    )
    assert poisoned == {"garbled": metrics.MALFORMED}
    assert replies.by_id["good"].error is None
    assert [record.request_id for record in records] == ["good"]


def test_encoded_rows_of_the_wrong_width_are_invalid_input_with_an_audit_row(
    cache, register_model, train_model
):
    model = register_model(train_model("binary"))
    wide = _rows(3, 4, features=6)
    replies = Replies()
    poisoned: dict[str, str] = {}
    [record] = serve_batch(
        cache, [_incoming("wide", model.id, wide)], replies, dead_letter=poisoned.__setitem__
    )
    assert (replies.by_id["wide"].error_code, replies.by_id["wide"].error) == (
        "invalid_input",
        "expected 5 features per row",
    )
    assert poisoned == {"wide": metrics.BAD_SHAPE}
    # The audit row keeps the rows as sent, for inspection.
    assert (record.status, record.error) == ("error", "invalid_input: expected 5 features per row")
    np.testing.assert_array_equal(record.inputs, wide)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"request_id": "x", "rows": [[float("nan")]]},
        "not a dict",
    ],
)
def test_a_malformed_payload_is_answered_with_invalid_message(cache, payload):
    replies = Replies()
    records = serve_batch(cache, [Incoming(task_id="bad", reply_to="reply-q", payload=payload)], replies)
    assert records == []
    reply = replies.by_id["bad"]
    assert (reply.request_id, reply.error_code, reply.error) == (
        "bad",
        "invalid_message",
        "malformed message",
    )


def test_an_unregistered_version_fails_only_its_own_requests(cache, register_model, train_model):
    model = register_model(train_model("regression"))
    replies = Replies()
    records = serve_batch(
        cache, [_incoming("ok", model.id, _rows(1, 1)), _incoming("ghost", 999, _rows(1, 1))], replies
    )
    assert replies.by_id["ok"].error is None
    assert replies.by_id["ghost"].error_code == "model_load_failed"
    assert replies.by_id["ghost"].error == "model version id 999 is not registered"
    # No audit row for the ghost: it would reference no registered version (a foreign key).
    assert {r.request_id: r.status for r in records} == {"ok": "ok"}


def test_audit_rows_describe_each_request(cache, register_model, train_model):
    model = register_model(train_model("multiclass"))
    item = _incoming("r", model.id, _rows(2, 7), traced=True)
    item.payload.update(api_key_id=12, protocol="v1", enqueued_at=time.time() - 1.0)
    (record,) = serve_batch(cache, [item], Replies())
    assert record.trace_id == TRACE
    assert (record.api_key_id, record.model_version_id, record.protocol) == (12, model.id, "v1")
    assert (record.status, record.error, record.device, record.batch_size) == ("ok", "", "cpu", 1)
    assert record.outputs.shape == (2, 3)
    assert record.latency_ms >= 1000.0
    assert record.predict_ms > 0


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""),
        ("garbage", ""),
    ],
)
def test_the_trace_id_comes_from_a_valid_traceparent_only(traceparent, expected):
    item = Incoming(task_id="t", reply_to=None, payload={}, headers={"traceparent": traceparent})
    assert trace_id_of(item.context) == expected


class _Message:
    """What celery-batches hands the task for one message."""

    def __init__(self, message_id: str, kwargs: object, request_dict: dict | None = None) -> None:
        self.id = message_id
        self.reply_to = "reply-q"
        self.kwargs = kwargs
        self.request_dict = request_dict or {}


def test_a_coalesced_message_carries_each_request_with_its_own_id_and_trace():
    first, second = _incoming("a", 1, _rows(1, 0)).payload, _incoming("b", 1, _rows(2, 1)).payload
    traceparent = f"00-{TRACE}-b7ad6b7169203331-01"
    items = carried(_Message("m1", {"requests": [{**first, "trace": {"traceparent": traceparent}}, second]}))
    assert [(i.task_id, i.message_id, i.grouped, i.reply_to) for i in items] == [
        ("a", "m1", True, "reply-q"),
        ("b", "m1", True, "reply-q"),
    ]
    assert trace_id_of(items[0].context) == TRACE
    assert trace_id_of(items[1].context) == ""


def test_a_single_request_message_is_one_ungrouped_request_traced_by_its_headers():
    payload = _incoming("a", 1, _rows(1, 0)).payload
    headers = {"traceparent": f"00-{TRACE}-b7ad6b7169203331-01"}
    [item] = carried(_Message("a", {"request": payload}, headers))
    assert (item.task_id, item.message_id, item.grouped, item.payload) == ("a", "a", False, payload)
    assert trace_id_of(item.context) == TRACE


@pytest.mark.parametrize("requests", [[], "nope", [None], [{"request_id": ""}]])
def test_a_broken_coalesced_message_still_yields_a_request_to_refuse(cache, requests):
    items = carried(_Message("m9", {"requests": requests}))
    assert [(i.task_id, i.message_id) for i in items] == [("m9:0", "m9")]
    replies = Replies()
    poisoned: dict[str, str] = {}
    serve_batch(cache, items, replies, dead_letter=poisoned.__setitem__)
    assert replies.by_id["m9:0"].error_code == "invalid_message"
    assert poisoned == {"m9:0": "malformed"}


def test_held_replies_are_sent_before_the_audit_rows_are_written(cache, register_model, train_model):
    model = register_model(train_model("regression"))
    events: list[str] = []
    serve_batch(
        cache,
        [_incoming("r1", model.id, _rows(1, 0)), _incoming("r2", model.id, _rows(1, 1))],
        lambda reply_to, correlation_id, reply: events.append(f"reply {correlation_id}"),
        write=lambda rows: events.append(f"write {len(rows)}"),
        send_replies=lambda: events.append("send"),
    )
    assert events == ["reply r1", "reply r2", "send", "write 2"]
