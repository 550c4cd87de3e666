"""Load generators on threads: closed loop (N clients back to back) and open loop (a fixed arrival rate).

A *client* is a callable made once per thread (so each thread owns its HTTP session) that sends one
request and raises on any failure. Both generators are bounded in time and in requests in flight.

The open loop measures each latency from the request's *scheduled* send time, not from when a
thread got round to sending it: when the system falls behind, the wait shows in the percentiles
instead of silently lowering the offered load (coordinated omission).
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable

from benchmarks.stats import PointStats, summarize

Client = Callable[[], None]
ClientFactory = Callable[[], Client]


class _Recorder:
    """Latencies and error counts shared by the load threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors = 0
        self.dropped = 0
        self.last_error = ""
        self.last_done = 0.0

    def ok(self, latency: float, done: float) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.last_done = max(self.last_done, done)

    def fail(self, exc: BaseException, done: float) -> None:
        with self.lock:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self.last_done = max(self.last_done, done)

    def call(self, client: Client, since: float) -> None:
        """Send one request; record its latency from ``since`` (sent or scheduled time) or its error."""
        try:
            client()
        except Exception as exc:
            self.fail(exc, time.perf_counter())
        else:
            done = time.perf_counter()
            self.ok(done - since, done)


def closed_loop(factory: ClientFactory, concurrency: int, duration_s: float) -> tuple[PointStats, str]:
    """``concurrency`` clients each sending back to back for ``duration_s``: the saturation throughput.

    Returns the point's statistics (offered rate reported as 0: a closed loop offers "as fast as
    answered") and the last error message, if any.
    """
    rec = _Recorder()
    start = time.perf_counter()
    deadline = start + duration_s

    def run() -> None:
        client = factory()
        while time.perf_counter() < deadline:
            rec.call(client, time.perf_counter())

    threads = [threading.Thread(target=run, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(duration_s, rec.last_done - start)
    return summarize(rec.latencies, rec.errors, 0, elapsed, 0.0), rec.last_error


def open_loop(
    factory: ClientFactory,
    rate_rps: float,
    duration_s: float,
    max_in_flight: int = 64,
    drain_s: float = 15.0,
    seed: int = 0,
) -> tuple[PointStats, str]:
    """Poisson arrivals at ``rate_rps`` for ``duration_s`` served by at most ``max_in_flight`` threads.

    An arrival that finds ``max_in_flight`` requests already waiting to be sent is dropped and
    counted: it bounds the load the generator can pile onto an overloaded system. Requests still
    in flight ``drain_s`` after the window are abandoned (their threads are daemons) and counted
    as errors.
    """
    rec = _Recorder()
    pending: queue.Queue[float | None] = queue.Queue()
    in_flight = 0
    flight_lock = threading.Lock()

    def serve() -> None:
        nonlocal in_flight
        client = factory()
        while True:
            scheduled = pending.get()
            if scheduled is None:
                return
            # Sleep until the scheduled send time (the scheduler runs slightly ahead of the clock).
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            rec.call(client, scheduled)
            with flight_lock:
                in_flight -= 1

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(max_in_flight)]
    for thread in threads:
        thread.start()
    # A Poisson process conditioned on its count: exactly rate x duration arrivals, uniformly
    # scattered, so every run of a point offers the same load and the gaps are still exponential.
    rng = random.Random(seed)
    offsets = sorted(rng.uniform(0, duration_s) for _ in range(round(rate_rps * duration_s)))
    start = time.perf_counter()
    for offset in offsets:
        at = start + offset
        # Keep the scheduler close to real time so the queue never holds far-future arrivals.
        ahead = at - time.perf_counter()
        if ahead > 0.002:
            time.sleep(ahead - 0.001)
        with flight_lock:
            full = in_flight >= max_in_flight
            if not full:
                in_flight += 1
        if full:
            rec.dropped += 1
        else:
            pending.put(at)
    for _ in threads:
        pending.put(None)
    deadline = time.perf_counter() + max(0.0, start + duration_s - time.perf_counter()) + drain_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()))
    abandoned = sum(thread.is_alive() for thread in threads)
    rec.errors += abandoned
    if abandoned:
        rec.last_error = rec.last_error or f"{abandoned} requests still in flight after the drain"
    elapsed = max(duration_s, rec.last_done - start)
    return summarize(rec.latencies, rec.errors, rec.dropped, elapsed, rate_rps), rec.last_error
