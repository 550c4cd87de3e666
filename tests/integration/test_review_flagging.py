"""Review flagging through the real api, broker, worker and database."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb

from inference_api.dispatch import make_celery
from inference_common.contract import PREDICT_TASK, Queues
from support.polling import poll
from support.stack import queue_depth

NAME = "reviewed"
#: Rows per request; the band is chosen from their scores so that some, not all, fall in it.
N_ROWS = 60
THRESHOLD = 20.0


@pytest.fixture(scope="module")
def reviewed(register_version, train_binary, models, db):
    """A production model with a policy: a band around the middle of its scores, and a rule."""
    model = register_version(NAME, train_binary(20), models["binary"].rows[:N_ROWS], "production")
    scores = np.sort(model.expected(model.rows))
    low, high = float(scores[N_ROWS // 3]), float(scores[2 * N_ROWS // 3])
    db.execute(
        """INSERT INTO review_policies
               (model_name, enabled, band_low, band_high, rules, updated_at, updated_by)
           VALUES (%s, true, %s, %s, %s, now(), 'test')""",
        (NAME, low, high, Jsonb([{"field": "f_0", "op": ">", "value": THRESHOLD}])),
    )
    return model, low, high


def _items(db: psycopg.Connection, request_id: str) -> list[tuple]:
    return db.execute(
        """SELECT row_index, features, outputs, score, reason, status, model_version_id
           FROM review_items WHERE request_id = %s ORDER BY row_index""",
        (request_id,),
    ).fetchall()


def test_rows_in_the_band_or_flagged_by_a_rule_are_queued_with_their_data(api, db, reviewed):
    model, low, high = reviewed
    response = api.post(f"{api.base}/v1/models/{NAME}:predict", json={"instances": model.rows.tolist()})
    assert response.status_code == 200, response.text
    request_id = response.headers["X-Request-ID"]
    scores = model.expected(model.rows)
    in_band = (scores >= np.float32(low)) & (scores <= np.float32(high))
    by_rule = model.rows[:, 0] > THRESHOLD
    expected = sorted(np.flatnonzero(in_band | by_rule).tolist())
    assert 0 < len(expected) < N_ROWS, "the policy must split the rows for this test to mean anything"
    assert by_rule.any()
    assert (by_rule & ~in_band).any(), "some rows must be queued by the rule alone"
    items = poll(lambda: _items(db, request_id), lambda found: len(found) >= len(expected), 60)
    assert [item[0] for item in items] == expected
    version_id = db.execute(
        "SELECT id FROM model_versions WHERE name = %s AND version = %s", (NAME, model.version)
    ).fetchone()[0]
    for index, features, outputs, score, reason, status, model_version_id in items:
        np.testing.assert_array_equal(np.asarray(features, dtype=np.float32), model.rows[index])
        assert np.float32(outputs[0]) == scores[index]
        assert np.float32(score) == scores[index]
        assert (status, model_version_id) == ("pending", version_id)
        if in_band[index]:
            assert f"in uncertainty band [{low:g}, {high:g}]" in reason
        if by_rule[index]:
            assert f"rule f_0 > {THRESHOLD:g}" in reason


def test_requests_whose_rows_are_all_outside_the_policy_queue_nothing(api, db, reviewed):
    model, low, high = reviewed
    scores = model.expected(model.rows)
    calm = (scores < np.float32(low)) | (scores > np.float32(high))
    calm &= model.rows[:, 0] <= THRESHOLD
    rows = model.rows[calm][:10]
    assert len(rows) > 0
    response = api.post(f"{api.base}/v1/models/{NAME}:predict", json={"instances": rows.tolist()})
    assert response.status_code == 200, response.text
    request_id = response.headers["X-Request-ID"]
    poll(
        lambda: db.execute(
            "SELECT 1 FROM prediction_records WHERE request_id = %s", (request_id,)
        ).fetchall(),
        bool,
        60,
    )
    assert _items(db, request_id) == []


def test_a_redelivered_request_does_not_queue_its_rows_twice(api, db, stack, infra, reviewed):
    model, _, _ = reviewed
    response = api.post(f"{api.base}/v1/models/{NAME}:predict", json={"instances": model.rows.tolist()})
    assert response.status_code == 200, response.text
    request_id = response.headers["X-Request-ID"]
    first = poll(lambda: _items(db, request_id), bool, 60)
    poll(lambda: _items(db, request_id), lambda found: found == first, 10)
    version_id = first[0][6]
    # Remove one queued row, so that processing the copy leaves a visible trace.
    db.execute(
        "DELETE FROM review_items WHERE request_id = %s AND row_index = %s", (request_id, first[-1][0])
    )
    # The same message again, as RabbitMQ redelivers it after a lost ack.
    queues = Queues(stack.prefix)
    message = {
        "request_id": request_id,
        "protocol": "v1",
        "model": NAME,
        "version": model.version,
        "model_version_id": version_id,
        "n_features": model.rows.shape[1],
        "rows": model.rows.tolist(),
        "api_key_id": None,
        "enqueued_at": 0.0,
        "route": "production",
        "shadow_of": None,
    }
    publisher = make_celery(infra.broker_url, queues)
    try:
        publisher.send_task(PREDICT_TASK, kwargs={"request": message}, task_id=request_id)
    finally:
        publisher.close()
    poll(lambda: queue_depth(infra.broker_url, queues.predict), lambda depth: depth == 0, 60)
    # The deleted item came back (so the copy was really processed) and
    # nothing else was added.
    assert _items(db, request_id) == first
    count = db.execute("SELECT count(*) FROM prediction_records WHERE request_id = %s", (request_id,))
    assert count.fetchone()[0] == 1
