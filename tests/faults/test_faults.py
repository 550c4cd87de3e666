"""Fault injection under load: every accepted request is answered or visibly failed, none lost.

Each scenario runs a steady load of sync v1, sync v2 and async job requests
against a fresh api + worker pair, injects one fault (worker SIGKILL, worker
SIGTERM, RabbitMQ stop/start, PostgreSQL cut, api restart), recovers the way a
Deployment would, and then settles the load (support.load.settle): it waits
for every accepted request, compares answers with the model's own predict,
checks the audit rows and job chunks, and records the counts that
conftest.py prints and saves.
"""

from __future__ import annotations

import os
import signal
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from support.load import Load, assert_nothing_lost
from support.rabbitmq_node import RabbitMQNode, rabbitmq_available
from support.stack import Process, queue_depth, wait_until
from support.tcp_proxy import TcpProxy


def _run_for(load: Load, seconds: float, minimum_accepted: int = 3) -> None:
    """Let the load run ``seconds`` and until some requests got through since now."""
    mark = load.mark()
    deadline = time.monotonic() + seconds
    try:
        wait_until(lambda: time.monotonic() > deadline and load.accepted_since(mark) >= minimum_accepted, 60)
    except AssertionError as exc:  # say what the clients got instead
        raise AssertionError(f"{exc}; outcomes since: {load.summary_since(mark)}") from None


def _terminate_main(process: Process, sig: int = signal.SIGTERM) -> None:
    """Signal only the main process, as Kubernetes signals a container's PID 1."""
    os.kill(process.popen.pid, sig)


def test_it_loses_nothing_when_a_worker_is_killed_mid_batch_three_times(make_stack, load_on, outcome_of):
    stack = make_stack()
    stack.start_worker(concurrency=2)
    stack.start_api(workers=1)
    load = load_on(stack).start()
    try:
        _run_for(load, 2)
        for _ in range(3):
            worker = stack.workers[-1]
            wait_until(lambda: load.in_flight > 0, 30)
            # The whole process group, pool processes included: an OOM kill or a lost node.
            worker.signal(signal.SIGKILL)
            worker.popen.wait(10)
            # The Deployment's replacement pod.
            stack.start_worker(concurrency=2)
            _run_for(load, 2)
    finally:
        load.stop()
    counts = outcome_of("worker SIGKILL x3", load, stack)
    assert_nothing_lost(counts)


def test_it_loses_nothing_when_a_worker_is_stopped_mid_batch_with_work_queued(
    base, make_stack, load_on, outcome_of
):
    stack = make_stack()
    worker = stack.start_worker(concurrency=2)
    stack.start_api(workers=1)
    load = load_on(stack).start()
    try:
        _run_for(load, 2)
        # Freeze the worker while clients keep sending, so that at SIGTERM it
        # holds a batch and more work waits in the queue behind it.
        worker.signal(signal.SIGSTOP)
        time.sleep(1)
        load.burst(jobs=5)
        held = sum(
            queue_depth(base.broker_url, queue)
            for queue in (f"{stack.prefix}.predict", f"{stack.prefix}.jobs")
        )
        # Messages, not requests: the api coalesces requests published at the same moment.
        assert held >= 8, f"the worker must be stopped with work in hand and queued ({held} messages)"
        _terminate_main(worker)
        worker.signal(signal.SIGCONT)
        assert worker.popen.wait(60) == 0, worker.tail()
        assert "Warm shutdown" in worker.log.read_text(errors="replace")
        stack.start_worker(concurrency=2)
        _run_for(load, 2)
    finally:
        load.stop()
    counts = outcome_of("worker SIGTERM, work queued", load, stack, messages_held_at_sigterm=held)
    assert_nothing_lost(counts)


@pytest.fixture
def private_rabbitmq(base) -> RabbitMQNode:
    """A RabbitMQ node of this test's own (port, data dir, cookie); the shared broker is untouched."""
    if not rabbitmq_available():
        if os.environ.get("FAULTS_SKIP_OWN_RABBITMQ") == "1":
            pytest.skip("FAULTS_SKIP_OWN_RABBITMQ=1: this runner cannot start its own RabbitMQ node")
        pytest.fail(
            "rabbitmq-server is not installed, so the RabbitMQ restart scenario cannot start its own "
            "node; install it, or set FAULTS_SKIP_OWN_RABBITMQ=1 where the broker only runs in a container"
        )
    node = RabbitMQNode(base.tmp / "rabbitmq")
    node.start()
    yield node
    node.kill()


def test_it_loses_nothing_when_rabbitmq_stops_and_starts_again(
    private_rabbitmq, make_stack, load_on, outcome_of
):
    node = private_rabbitmq
    stack = make_stack(BROKER_URL=node.url)
    stack.start_worker(concurrency=2)
    stack.start_api(workers=1)
    load = load_on(stack).start()
    try:
        _run_for(load, 2)
        mark = load.mark()
        node.stop()
        down_since = time.monotonic()
        # Keep it down long enough that clients meet the outage.
        wait_until(lambda: time.monotonic() - down_since > 4 and load.mark() - mark >= 3, 30)
        outage = load.outcomes[mark:]
        # Same data dir: durable queues and persistent messages come back.
        node.start()
        wait_until(lambda: _answers_200(f"{stack.url}/readyz"), 60, stack.api)
        _run_for(load, 3)
    finally:
        load.stop()
    refused = [o for o in outage if o.status == 503]
    counts = outcome_of("RabbitMQ stop/start", load, stack, refused_during_outage=len(refused))
    assert refused, "requests during the outage must be refused with 503"
    assert all(o.retry_after for o in refused), "every 503 carries Retry-After"
    assert max(o.elapsed_s for o in outage) < 30, "refusals are prompt, not hangs"
    assert_nothing_lost(counts)


@pytest.fixture
def database_proxy(base) -> TcpProxy:
    """A TCP proxy in front of the run's PostgreSQL that the test can cut."""
    upstream = urlsplit(base.database_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5432).start()
    yield proxy
    proxy.stop()


def test_it_loses_nothing_when_postgresql_is_unreachable_for_a_few_seconds(
    base, database_proxy, make_stack, load_on, outcome_of
):
    proxy = database_proxy
    upstream = urlsplit(base.database_url)
    via_proxy = urlunsplit(upstream._replace(netloc=f"{upstream.username}@127.0.0.1:{proxy.port}"))
    stack = make_stack(DATABASE_URL=via_proxy)
    stack.start_worker(concurrency=2)
    stack.start_api(workers=1)
    load = load_on(stack).start()
    try:
        _run_for(load, 2)
        assert proxy.connections > 0, "the services must reach the database through the proxy"
        mark = load.mark()
        proxy.cut()
        time.sleep(5)  # the outage itself: its length is the scenario, not a wait for a condition
        outage = load.outcomes[mark:]
        proxy.restore()
        _run_for(load, 3)
    finally:
        load.stop()
    refused = [o for o in outage if o.status == 503]
    counts = outcome_of("PostgreSQL cut 5 s", load, stack, refused_during_outage=len(refused))
    assert outage, "clients must meet the outage"
    assert all(o.status != 500 for o in load.outcomes), [o.body for o in load.outcomes if o.status == 500][:3]
    assert all(o.retry_after for o in refused), "every 503 carries Retry-After"
    assert_nothing_lost(counts)


def test_it_loses_nothing_when_the_api_restarts_under_load(make_stack, load_on, outcome_of):
    stack = make_stack()
    stack.start_worker(concurrency=2)
    api = stack.start_api(workers=1)
    load = load_on(stack).start()
    try:
        _run_for(load, 2)
        # gunicorn's graceful stop: in-flight requests finish, then the port closes.
        _terminate_main(api)
        assert api.popen.wait(60) == 0, api.tail()
        mark = load.mark()
        wait_until(lambda: any(o.status == 0 for o in load.outcomes[mark:]), 30)
        stack.start_api(workers=1)
        _run_for(load, 3)
    finally:
        load.stop()
    counts = outcome_of("api restart", load, stack)
    assert counts["unreachable"] > 0, "clients must meet the restart gap"
    assert_nothing_lost(counts)


def _answers_200(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
