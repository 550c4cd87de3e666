"""Poison requests in a micro-batch are answered, marked for the dead-letter queue and counted."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from inference_common.contract import JOB_CHUNK_TASK, PREDICT_TASK, PredictReply
from inference_worker import metrics
from inference_worker.batching import Incoming, serve_batch
from inference_worker.deadletter import UNKNOWN_TASK_LABEL, task_label


def _incoming(task_id: str, model_version_id: int, rows: list[list[float]]) -> Incoming:
    payload = {
        "request_id": task_id,
        "model": "m",
        "version": "1",
        "model_version_id": model_version_id,
        "n_features": len(rows[0]),
        "rows": rows,
        "enqueued_at": time.time(),
    }
    return Incoming(task_id=task_id, reply_to="reply-q", payload=payload)


def test_it_marks_each_kind_of_poison_with_its_reason_and_still_answers_the_good_request(
    cache, register_model, train_model
):
    model = register_model(train_model("regression"))
    width = model.booster.num_features()
    good = _incoming("good", model.id, np.zeros((2, width)).tolist())
    batch = [
        Incoming(task_id="malformed", reply_to="reply-q", payload={"bogus": 1}),
        _incoming("ghost", 2_000_000, [[0.0] * width]),
        _incoming("narrow", model.id, [[0.0, 1.0]]),
        good,
    ]
    replies: dict[str, PredictReply] = {}
    marked: dict[str, str] = {}
    serve_batch(
        cache, batch, lambda _to, cid, reply: replies.__setitem__(cid, reply), dead_letter=marked.__setitem__
    )
    assert marked == {
        "malformed": metrics.MALFORMED,
        "ghost": metrics.UNKNOWN_MODEL,
        "narrow": metrics.BAD_SHAPE,
    }
    # Every poison request was answered (its caller does not wait), the good one with a prediction.
    assert {cid for cid, reply in replies.items() if reply.error} == set(marked)
    assert replies["good"].error is None
    assert len(replies["good"].outputs) == 2


def test_it_counts_dead_letters_by_task_and_reason_and_refuses_unknown_reasons():
    def count() -> float:
        sample = REGISTRY.get_sample_value(
            "inference_worker_dead_lettered_total", {"task": JOB_CHUNK_TASK, "reason": "load_failed"}
        )
        return sample or 0.0

    before = count()
    metrics.count_dead_letter(JOB_CHUNK_TASK, metrics.LOAD_FAILED, 2)
    assert count() == before + 2
    with pytest.raises(ValueError, match="unknown dead-letter reason"):
        metrics.count_dead_letter(JOB_CHUNK_TASK, "whatever the message said")


class _Message:
    def __init__(self, headers: object) -> None:
        self.headers = headers


@pytest.mark.parametrize(
    ("headers", "label"),
    [
        ({"task": PREDICT_TASK}, PREDICT_TASK),
        ({"task": JOB_CHUNK_TASK}, JOB_CHUNK_TASK),
        ({"task": "attacker.chosen.name"}, UNKNOWN_TASK_LABEL),
        ({}, UNKNOWN_TASK_LABEL),
        (None, UNKNOWN_TASK_LABEL),
    ],
)
def test_it_labels_raw_messages_only_with_our_own_task_names(headers, label):
    assert task_label(_Message(headers)) == label
