"""Job chunks published with their confirms waited for together, on the real RabbitMQ."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from amqp.exceptions import MessageNacked
from celery import Celery
from kombu import Connection, Exchange, Queue

from inference_api.publishing import TaskPublisher
from inference_common.broker import celery_config
from inference_common.contract import JOB_CHUNK_TASK, Queues


@pytest.fixture
def celery(infra) -> Iterator[Celery]:
    app = Celery("publish-together-test", set_as_current=False)
    app.conf.update(celery_config(infra.broker_url, Queues(f"together-{uuid.uuid4().hex[:8]}")))
    yield app
    app.close()


def _queue(name: str, **arguments: object) -> Queue:
    return Queue(
        name,
        Exchange(name, type="direct", durable=True),
        routing_key=name,
        durable=True,
        queue_arguments=arguments or None,
    )


def _drain(celery: Celery, queue: Queue) -> list:
    with Connection(celery.conf.broker_url) as connection:
        bound = queue(connection.channel())
        messages = []
        while (message := bound.get(no_ack=True, accept=["msgpack"])) is not None:
            messages.append(message)
        bound.delete()
    return messages


def test_every_message_arrives_persistent_and_decodable_after_one_wait(celery: Celery) -> None:
    queue = _queue(f"together-{uuid.uuid4().hex[:8]}")
    publisher = TaskPublisher(celery, [queue], {})
    rows = [bytes([index]) * 4096 for index in range(13)]

    publisher.publish_all(
        JOB_CHUNK_TASK,
        [({"chunk": {"index": index, "rows_f32": row}}, f"job-{index}") for index, row in enumerate(rows)],
        queue.routing_key,
        serializer="msgpack",
    )

    messages = _drain(celery, queue)
    assert sorted(m.headers["id"] for m in messages) == sorted(f"job-{i}" for i in range(13))
    assert {m.headers["task"] for m in messages} == {JOB_CHUNK_TASK}
    assert {m.properties["delivery_mode"] for m in messages} == {2}
    assert {m.content_type for m in messages} == {"application/x-msgpack"}
    bodies = {m.headers["id"]: m.decode()[1]["chunk"] for m in messages}
    assert [bodies[f"job-{i}"]["rows_f32"] for i in range(13)] == rows


def test_a_refusal_by_the_broker_is_raised_not_swallowed(celery: Celery) -> None:
    # A real refusal: a queue that takes two messages and nacks the rest.
    queue = _queue(f"together-{uuid.uuid4().hex[:8]}", **{"x-max-length": 2, "x-overflow": "reject-publish"})
    publisher = TaskPublisher(celery, [queue], {})

    with pytest.raises(MessageNacked, match="refused 3 of 5"):
        publisher.publish_all(
            JOB_CHUNK_TASK, [({"chunk": {"index": i}}, f"job-{i}") for i in range(5)], queue.routing_key
        )

    assert len(_drain(celery, queue)) == 2
