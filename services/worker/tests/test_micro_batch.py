"""When ``MicroBatch`` hands buffered messages to the pool: on arrival when eager, on completion always."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery_batches import Batches

from inference_worker.tasks import MicroBatch


class _Recorded(MicroBatch):
    """A MicroBatch whose pool is two slots and whose flushes are recorded, not run."""

    name = "test.micro_batch"
    flush_every = 64
    flush_interval = 0.01

    def __init__(self, eager: bool) -> None:
        super().__init__()
        self.eager = eager
        self._pool = SimpleNamespace(num_processes=2)
        self.flushed: list[list[Any]] = []

    def flush(self, requests: Any) -> None:
        self._in_flight += 1
        self.flushed.append(list(requests))


@pytest.fixture
def upstream_handler(monkeypatch):
    """celery-batches' own handler, reduced to what it does with a message: buffer it."""

    def strategy(self: Batches, task: Any, app: Any, consumer: Any) -> Any:
        def buffer_message(message: Any, *args: Any) -> None:
            self._buffer.put(SimpleNamespace(eta=None, id=message))

        return buffer_message

    monkeypatch.setattr(Batches, "Strategy", strategy)


def _ids(batches: list[list[Any]]) -> list[list[str]]:
    return [[request.id for request in batch] for batch in batches]


def test_an_eager_batch_gives_each_message_to_an_idle_process_at_once_and_gathers_while_all_are_busy(
    upstream_handler,
):
    task = _Recorded(eager=True)
    handle = task.Strategy(task, None, None)

    for message in ("a", "b", "c", "d", "e"):
        handle(message)

    # Two processes: the first two messages went out alone, the others wait together.
    assert _ids(task.flushed) == [["a"], ["b"]]
    assert task._buffer.qsize() == 3
    task._batch_done()
    assert _ids(task.flushed) == [["a"], ["b"], ["c", "d", "e"]]


def test_a_batch_with_a_wait_leaves_arrivals_to_its_timer(upstream_handler):
    task = _Recorded(eager=False)
    handle = task.Strategy(task, None, None)

    handle("a")
    handle("b")

    assert task.flushed == []
    assert task._buffer.qsize() == 2
    task._do_flush()  # what the flush timer calls
    assert _ids(task.flushed) == [["a", "b"]]
