"""The hand-built task message is the message Celery itself would send."""

from __future__ import annotations

import orjson
import pytest
from celery import Celery
from kombu.serialization import dumps as kombu_dumps
from kombu.serialization import loads as kombu_loads
from kombu.utils.json import loads

from inference_api.publishing import task_body, task_headers
from inference_common.contract import PREDICT_TASK


def test_headers_match_celerys_protocol_v2_except_the_log_only_fields():
    kwargs = {"request": {"request_id": "r1", "rows": [[1.0, 2.0]]}}
    celery = Celery("compare", set_as_current=False).amqp.as_task_v2(
        "r1", PREDICT_TASK, args=(), kwargs=kwargs
    )
    ours = task_headers(PREDICT_TASK, "r1", "1@host")
    log_only = {"kwargsrepr", "origin"}
    assert set(ours) == set(celery.headers)
    assert {k: v for k, v in ours.items() if k not in log_only} == {
        k: v for k, v in celery.headers.items() if k not in log_only
    }
    assert "r1" in ours["kwargsrepr"]


def test_the_body_decodes_to_celerys_args_kwargs_and_embed():
    kwargs = {"request": {"request_id": "r1", "rows": [[1.0, 2.0]]}}
    celery = Celery("compare", set_as_current=False).amqp.as_task_v2(
        "r1", PREDICT_TASK, args=(), kwargs=kwargs
    )
    args, decoded_kwargs, embed = loads(task_body(kwargs))
    assert (tuple(args), decoded_kwargs, embed) == celery.body
    assert orjson.loads(task_body(kwargs)) == [[], kwargs, celery.body[2]]


def test_a_msgpack_body_is_the_body_kombus_msgpack_serializer_makes():
    kwargs = {"chunk": {"job_id": "j", "rows_f32": b"\x00\x00\x80?" * 3}}
    celery = Celery("compare", set_as_current=False).amqp.as_task_v2(
        "j-0", PREDICT_TASK, args=(), kwargs=kwargs
    )
    content_type, encoding, expected = kombu_dumps(celery.body, serializer="msgpack")

    body = task_body(kwargs, "msgpack")

    assert body == expected
    decoded = kombu_loads(body, content_type, encoding, accept={content_type})
    assert decoded[1]["chunk"]["rows_f32"] == kwargs["chunk"]["rows_f32"]


def test_an_unknown_serializer_is_refused():
    with pytest.raises(ValueError, match="unknown serializer"):
        task_body({}, "pickle")
