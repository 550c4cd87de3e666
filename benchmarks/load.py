"""Load generators on one asyncio loop: closed loop (N clients back to back) and open loop (a fixed rate).

The client is deliberately cheap: each request's bytes are built once, sent over a kept-alive
HTTP/1.1 connection, and the answer is read by its Content-Length. A general-purpose client
(``requests`` on threads, the first version of this benchmark) spent about 1.5 ms of CPU per
request, on the same two cores as the systems under test: the generator, not the server, then
set the ceiling of the fastest system. Every system is measured with this same client.

Both generators are bounded in time and in requests in flight. The open loop measures each
latency from the request's *scheduled* send time, not from when a connection was free to send
it: when the system falls behind, the wait shows in the percentiles instead of silently lowering
the offered load (coordinated omission).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from benchmarks.stats import PointStats, summarize


class HttpError(Exception):
    """An answer other than 200, or a broken exchange."""


@dataclass
class Target:
    """POST requests to one URL, cycling through pre-encoded bodies."""

    url: str
    bodies: Sequence[bytes]
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        self.requests = [
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: {self.content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            ).encode("latin-1")
            + body
            for body in self.bodies
        ]
        self._cursor = itertools.count()

    def take(self) -> bytes:
        """The next request, cycling through the bodies; points sent one after another continue the cycle."""
        return self.requests[next(self._cursor) % len(self.requests)]


class _ClosedWhileIdleError(Exception):
    """The connection ended before a byte of the answer arrived."""


class Connection:
    """One kept-alive HTTP/1.1 connection; reconnects after a broken exchange."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> None:
        """Send ``request`` and read the whole answer; raise HttpError unless it is a 200.

        A kept-alive connection the server closed while idle (its keep-alive timeout) ends
        before the first byte of the answer: the request is sent again once on a new
        connection, as HTTP clients do; the server never read it.
        """
        reused = self.writer is not None
        try:
            await self._exchange(request)
        except _ClosedWhileIdleError:
            if not reused:
                raise HttpError("connection closed before any answer") from None
            self.close()
            try:
                await self._exchange(request)
            except _ClosedWhileIdleError:
                raise HttpError("connection closed before any answer") from None

    async def _exchange(self, request: bytes) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.target.host, self.target.port)
        assert self.reader is not None
        try:
            try:
                self.writer.write(request)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                raise _ClosedWhileIdleError from exc
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    self.close()
                    raise _ClosedWhileIdleError from exc
                raise
            status = int(head[9:12])
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    raise HttpError(f"unsupported transfer-encoding {value.strip()!r}")
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            body = await self.reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        if close:
            self.close()
        if status != 200:
            raise HttpError(f"HTTP {status}: {body[:200].decode(errors='replace')}")

    def close(self) -> None:
        """Drop the connection (the next send opens a new one)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class _Recorder:
    """Latencies and error counts of one load point."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.dropped = 0
        self.last_error = ""
        self.last_done = 0.0

    async def call(self, connection: Connection, request: bytes, since: float) -> None:
        """Send one request; record its latency from ``since`` (sent or scheduled time) or its error."""
        try:
            await connection.send(request)
        except Exception as exc:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            self.latencies.append(time.perf_counter() - since)
        self.last_done = max(self.last_done, time.perf_counter())


def closed_loop(target: Target, concurrency: int, duration_s: float) -> tuple[PointStats, str]:
    """``concurrency`` clients each sending back to back for ``duration_s``: the saturation throughput.

    Returns the point's statistics (offered rate reported as 0: a closed loop offers "as fast as
    answered") and the last error message, if any.
    """
    rec = _Recorder()

    async def main() -> float:
        start = time.perf_counter()
        deadline = start + duration_s

        async def client() -> None:
            connection = Connection(target)
            try:
                while time.perf_counter() < deadline:
                    await rec.call(connection, target.take(), time.perf_counter())
            finally:
                connection.close()

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return start

    start = asyncio.run(main())
    elapsed = max(duration_s, rec.last_done - start)
    return summarize(rec.latencies, rec.errors, 0, elapsed, 0.0), rec.last_error


def open_loop(
    target: Target,
    rate_rps: float,
    duration_s: float,
    max_in_flight: int = 64,
    drain_s: float = 15.0,
    seed: int = 0,
) -> tuple[PointStats, str]:
    """Poisson arrivals at ``rate_rps`` for ``duration_s`` over at most ``max_in_flight`` connections.

    An arrival that finds every connection busy is dropped and counted: it bounds the load the
    generator can pile onto an overloaded system. Requests still in flight ``drain_s`` after the
    window are abandoned and counted as errors.
    """
    rec = _Recorder()
    # A Poisson process conditioned on its count: exactly rate x duration arrivals, uniformly
    # scattered, so every run of a point offers the same load and the gaps are still exponential.
    rng = random.Random(seed)
    offsets = sorted(rng.uniform(0, duration_s) for _ in range(round(rate_rps * duration_s)))

    async def main() -> float:
        idle = [Connection(target) for _ in range(max_in_flight)]
        busy: set[asyncio.Task] = set()

        async def one(connection: Connection, request: bytes, scheduled: float) -> None:
            try:
                await rec.call(connection, request, scheduled)
            finally:
                idle.append(connection)

        start = time.perf_counter()
        for offset in offsets:
            at = start + offset
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if not idle:
                rec.dropped += 1
                continue
            task = asyncio.create_task(one(idle.pop(), target.take(), at))
            busy.add(task)
            task.add_done_callback(busy.discard)
        remaining = max(0.0, start + duration_s - time.perf_counter()) + drain_s
        if busy:
            _, pending = await asyncio.wait(set(busy), timeout=remaining)
            for task in pending:
                task.cancel()
            rec.errors += len(pending)
            if pending:
                rec.last_error = rec.last_error or f"{len(pending)} requests still in flight after the drain"
        for connection in idle:
            connection.close()
        return start

    start = asyncio.run(main())
    elapsed = max(duration_s, rec.last_done - start)
    return summarize(rec.latencies, rec.errors, rec.dropped, elapsed, rate_rps), rec.last_error
