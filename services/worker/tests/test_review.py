"""Review flagging: scores, band edges, rules, caps and idempotent queueing."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from sqlalchemy import Engine, delete, select, update

from inference_common.contract import PredictReply, encode_rows
from inference_common.schema import (
    ROUTE_CANARY,
    ROUTE_JOB,
    ROUTE_PINNED,
    ROUTE_PRODUCTION,
    ROUTE_SHADOW,
    prediction_records,
    review_items,
    review_policies,
)
from inference_worker.batching import Incoming, serve_batch
from inference_worker.config import WorkerSettings
from inference_worker.records import PredictionRow, RecordWriter
from inference_worker.review import Policy, ReviewFlagger, parse_rules, reasons, scores


def _policy(engine: Engine, band=(None, None), rules=(), enabled=True, name="m") -> None:
    with engine.begin() as conn:
        conn.execute(delete(review_policies).where(review_policies.c.model_name == name))
        conn.execute(
            review_policies.insert().values(
                model_name=name, enabled=enabled, band_low=band[0], band_high=band[1], rules=list(rules)
            )
        )


def _row(model_id: int, outputs, inputs=None, request_id="r1", **extra) -> PredictionRow:
    outputs = np.asarray(outputs, dtype=np.float32)
    if inputs is None:
        inputs = np.arange(len(outputs) * 5, dtype=np.float32).reshape(len(outputs), 5)
    fields = {
        "request_id": request_id,
        "api_key_id": None,
        "model_version_id": model_id,
        "protocol": "v2",
        "inputs": np.asarray(inputs, dtype=np.float32),
        "outputs": outputs,
        "latency_ms": 1.0,
        "predict_ms": 0.1,
        "batch_size": 1,
        "device": "cpu",
        "trace_id": "",
        "status": "ok",
        "route": ROUTE_PRODUCTION,
        **extra,
    }
    return PredictionRow(**fields)


def _writer(engine: Engine, max_rows: int = 100, ttl: float = 0.0) -> RecordWriter:
    return RecordWriter(engine, 100, ReviewFlagger(ttl, max_rows))


def _items(engine: Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(
            select(review_items).order_by(review_items.c.request_id, review_items.c.row_index)
        ).all()


@pytest.fixture
def model_id(register_model, train_model) -> int:
    return register_model(train_model("binary")).id


def test_the_score_is_the_output_or_the_highest_class_probability():
    np.testing.assert_array_equal(scores(np.array([0.2, 0.9])), [0.2, 0.9])
    np.testing.assert_allclose(scores(np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])), [0.7, 0.5])


def test_the_band_is_inclusive_at_both_edges(engine, model_id):
    _policy(engine, band=(0.4, 0.6))
    _writer(engine).write_predictions([_row(model_id, [0.3999, 0.4, 0.5, 0.6, 0.6001])])
    items = _items(engine)
    assert [item.row_index for item in items] == [1, 2, 3]
    assert items[0].reason == "score 0.4 in uncertainty band [0.4, 0.6]"
    assert {item.status for item in items} == {"pending"}


@pytest.mark.parametrize(
    ("band", "queued"),
    [((0.5, None), [2, 3]), ((None, 0.5), [0, 1, 2]), ((None, None), [])],
)
def test_a_missing_bound_is_open_and_no_bounds_is_no_band(engine, model_id, band, queued):
    _policy(engine, band=band)
    _writer(engine).write_predictions([_row(model_id, [0.1, 0.3, 0.5, 0.9])])
    assert [item.row_index for item in _items(engine)] == queued


def test_an_item_keeps_the_rows_features_outputs_and_score(engine, register_model, train_model):
    multi = register_model(train_model("multiclass"), name="m")
    _policy(engine, band=(0.4, 0.6))
    outputs = [[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]]
    inputs = [[1.5, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    _writer(engine).write_predictions([_row(multi.id, outputs, inputs)])
    [item] = _items(engine)
    assert (item.request_id, item.row_index, item.model_version_id) == ("r1", 0, multi.id)
    assert item.features == [1.5, 2.0, 3.0, 4.0, 5.0]
    np.testing.assert_allclose(item.outputs, outputs[0], rtol=1e-6)
    assert item.score == pytest.approx(0.5)


def test_rules_flag_rows_by_feature_name_or_score(engine, model_id):
    _policy(
        engine,
        rules=[{"field": "f2", "op": ">", "value": 3.0}, {"field": "score", "op": "<=", "value": 0.05}],
    )
    inputs = [[0, 0, 1, 0, 0], [0, 0, 3, 0, 0], [0, 0, 3.5, 0, 0], [0, 0, 0, 0, 0]]
    _writer(engine).write_predictions([_row(model_id, [0.5, 0.5, 0.5, 0.05], inputs)])
    assert [(item.row_index, item.reason) for item in _items(engine)] == [
        (2, "rule f2 > 3"),
        (3, "rule score <= 0.05"),
    ]


@pytest.mark.parametrize(
    ("op", "flagged"),
    [("<", [0]), ("<=", [0, 1]), (">", [2]), (">=", [1, 2]), ("==", [1]), ("!=", [0, 2])],
)
def test_every_rule_operator_compares_as_written(op, flagged):
    policy = Policy(None, None, parse_rules([{"field": "f0", "op": op, "value": 2}], "m"))
    rows = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    assert [i for i in range(3) if reasons(policy, 0.5, rows[i], ["f0"])] == flagged


def test_both_reasons_are_given_when_band_and_rule_match():
    policy = Policy(0.4, 0.6, parse_rules([{"field": "f0", "op": ">", "value": 1}], "m"))
    assert reasons(policy, 0.5, np.array([2.0]), ["f0"]) == [
        "score 0.5 in uncertainty band [0.4, 0.6]",
        "rule f0 > 1",
    ]


def test_malformed_or_unknown_rules_are_ignored_not_fatal(engine, model_id, caplog):
    rules = [
        {"field": "f0", "op": "~", "value": 1},
        {"field": "f0", "value": 1},
        {"field": "f0", "op": ">", "value": "high"},
        "f0 > 1",
        {"field": "nope", "op": ">", "value": -1e9},
        {"field": "f1", "op": ">=", "value": 0},
    ]
    assert len(parse_rules(rules, "m")) == 2
    _policy(engine, rules=rules)
    _writer(engine).write_predictions([_row(model_id, [0.5])])
    assert [item.reason for item in _items(engine)] == ["rule f1 >= 0"]
    assert "ignoring" in caplog.text


@pytest.mark.parametrize("enabled", [False, None])
def test_a_disabled_or_missing_policy_queues_nothing(engine, model_id, enabled):
    if enabled is not None:
        _policy(engine, band=(0.0, 1.0), enabled=enabled)
    _writer(engine).write_predictions([_row(model_id, [0.5, 0.5])])
    assert _items(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(prediction_records.c.request_id)).scalars().all() == ["r1"]


def test_a_redelivered_request_queues_its_rows_once(engine, model_id):
    _policy(engine, band=(0.0, 1.0))
    writer = _writer(engine)
    writer.write_predictions([_row(model_id, [0.5, 0.7])])
    writer.write_predictions([_row(model_id, [0.5, 0.7])])
    assert [(item.request_id, item.row_index) for item in _items(engine)] == [("r1", 0), ("r1", 1)]


def test_a_request_queues_at_most_the_cap_of_rows(engine, model_id):
    _policy(engine, band=(0.0, 1.0))
    _writer(engine, max_rows=3).write_predictions(
        [_row(model_id, [0.5] * 10, request_id="big"), _row(model_id, [0.5] * 2, request_id="small")]
    )
    assert [(item.request_id, item.row_index) for item in _items(engine)] == [
        ("big", 0),
        ("big", 1),
        ("big", 2),
        ("small", 0),
        ("small", 1),
    ]


def test_a_zero_cap_turns_queueing_off(engine, model_id):
    _policy(engine, band=(0.0, 1.0))
    _writer(engine, max_rows=0).write_predictions([_row(model_id, [0.5])])
    assert _items(engine) == []


def test_only_answered_sync_requests_are_reviewed(engine, model_id):
    _policy(engine, band=(0.0, 1.0))
    rows = [
        _row(model_id, [0.5], request_id="production"),
        _row(model_id, [0.5], request_id="pinned", route=ROUTE_PINNED),
        _row(model_id, [0.5], request_id="canary", route=ROUTE_CANARY),
        _row(model_id, [0.5], request_id="shadow", route=ROUTE_SHADOW, shadow_of="production"),
        _row(model_id, [0.5], request_id="job", route=ROUTE_JOB),
        _row(model_id, [0.5], request_id="job2", job_id=uuid.uuid4()),
        _row(model_id, [0.5], request_id="failed", status="error"),
        _row(model_id, [0.5], request_id="legacy", route=""),
    ]
    _writer(engine).write_predictions(rows)
    assert sorted(item.request_id for item in _items(engine)) == ["canary", "legacy", "pinned", "production"]


def test_a_policy_change_applies_after_the_cache_ttl(engine, model_id):
    _policy(engine, band=(0.0, 0.1))
    writer = _writer(engine, ttl=0.3)
    writer.write_predictions([_row(model_id, [0.5], request_id="a")])
    with engine.begin() as conn:
        conn.execute(update(review_policies).values(band_high=1.0))
    writer.write_predictions([_row(model_id, [0.5], request_id="b")])
    time.sleep(0.35)
    writer.write_predictions([_row(model_id, [0.5], request_id="c")])
    assert [item.request_id for item in _items(engine)] == ["c"]


def test_the_batch_records_routes_and_never_answers_a_shadow_copy(
    engine, store, cache, register_model, train_model
):
    production = register_model(train_model("binary", seed=1))
    shadow = register_model(train_model("binary", seed=2))
    _policy(engine, band=(0.0, 1.0))
    rows = np.random.default_rng(3).normal(size=(2, 5)).astype(np.float32)

    def incoming(request_id: str, model_id: int, **route) -> Incoming:
        payload = {
            "request_id": request_id,
            "model": "m",
            "version": "1",
            "model_version_id": model_id,
            "n_features": 5,
            # As the api publishes them: float32 bytes (rows_b64).
            "rows_b64": encode_rows(rows),
            "enqueued_at": time.time(),
            **route,
        }
        return Incoming(task_id=request_id, reply_to="celery-oid", payload=payload)

    answered: list[str] = []

    def reply(reply_to: str | None, correlation_id: str, answer: PredictReply) -> None:
        answered.append(correlation_id)

    writer = _writer(engine)
    batch = [
        incoming("p", production.id, route=ROUTE_PRODUCTION),
        incoming("s", shadow.id, route=ROUTE_SHADOW, shadow_of="p"),
    ]
    serve_batch(cache, batch, reply, write=writer.write_predictions)
    assert answered == ["p"]
    with engine.connect() as conn:
        records = {r.request_id: r for r in conn.execute(select(prediction_records)).all()}
    assert (records["p"].route, records["p"].shadow_of) == (ROUTE_PRODUCTION, "")
    assert (records["s"].route, records["s"].shadow_of, records["s"].model_version_id) == (
        ROUTE_SHADOW,
        "p",
        shadow.id,
    )
    np.testing.assert_array_equal(
        np.asarray(records["s"].outputs, dtype=np.float32), shadow.booster.inplace_predict(rows)
    )
    items = _items(engine)
    assert {item.request_id for item in items} == {"p"}
    # The queued rows are the request's own rows, decoded from the message.
    np.testing.assert_array_equal(np.asarray([item.features for item in items], dtype=np.float32), rows)


def test_review_settings_have_safe_defaults_and_are_validated():
    settings = WorkerSettings.from_env({})
    assert (settings.policy_cache_ttl_s, settings.review_max_rows_per_request) == (30.0, 100)
    with pytest.raises(Exception, match="WORKER_REVIEW_MAX_ROWS_PER_REQUEST"):
        WorkerSettings.from_env({"WORKER_REVIEW_MAX_ROWS_PER_REQUEST": "-1"})
