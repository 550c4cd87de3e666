"""One publisher thread per api process gathers the requests waiting for it into one message."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import pytest

from inference_api.coalescing import Coalescer


class SlowBroker:
    """Records each message's requests; the first publish blocks until released."""

    def __init__(self, fail: bool = False) -> None:
        self.messages: list[list[dict]] = []
        self.release = threading.Event()
        self.fail = fail

    def publish(self, requests: list[dict]) -> None:
        if not self.messages:
            self.release.wait(5)
        self.messages.append(requests)
        if self.fail:
            raise ConnectionError("refused")


def test_a_request_that_finds_the_publisher_idle_goes_out_alone_at_once():
    broker = SlowBroker()
    broker.release.set()
    coalescer = Coalescer(broker.publish, max_batch=8)
    coalescer.publish({"request_id": "a"}, timeout_s=5)
    assert broker.messages == [[{"request_id": "a"}]]


def test_requests_that_arrive_during_a_publish_share_the_next_message_up_to_the_bound():
    broker = SlowBroker()
    coalescer = Coalescer(broker.publish, max_batch=4)
    with ThreadPoolExecutor(10) as pool:
        first = pool.submit(coalescer.publish, {"request_id": "first"}, 5)
        while not broker.messages and coalescer._waiting.qsize():  # the first is being published
            time.sleep(0.01)
        time.sleep(0.05)
        rest = [pool.submit(coalescer.publish, {"request_id": f"r{i}"}, 5) for i in range(9)]
        time.sleep(0.2)  # all nine wait behind the blocked publish
        broker.release.set()
        for future in [first, *rest]:
            future.result(timeout=5)
    sizes = [len(message) for message in broker.messages]
    assert sizes[0] == 1
    assert sum(sizes) == 10
    assert max(sizes) == 4  # the bound holds: 9 waiting requests went out as 4 + 4 + 1
    assert len(broker.messages) == 4
    sent = [request["request_id"] for message in broker.messages for request in message]
    assert sorted(sent) == sorted(["first", *[f"r{i}" for i in range(9)]])


def test_a_refused_message_fails_every_request_it_carried_and_the_next_ones_still_go():
    broker = SlowBroker(fail=True)
    broker.release.set()
    coalescer = Coalescer(broker.publish, max_batch=8)
    with pytest.raises(ConnectionError):
        coalescer.publish({"request_id": "a"}, timeout_s=5)
    broker.fail = False
    coalescer.publish({"request_id": "b"}, timeout_s=5)
    assert broker.messages[-1] == [{"request_id": "b"}]


def test_a_publish_that_never_returns_times_the_waiter_out():
    broker = SlowBroker()  # never released
    coalescer = Coalescer(broker.publish, max_batch=8)
    with pytest.raises(FutureTimeout):
        coalescer.publish({"request_id": "a"}, timeout_s=0.2)
    broker.release.set()


def test_the_bound_must_allow_one_request():
    with pytest.raises(ValueError, match="at least 1"):
        Coalescer(lambda requests: None, max_batch=0)
