"""The load generator against a real local HTTP server: counts, errors, drops and keep-alive."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from benchmarks.load import Target, closed_loop, open_loop


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the generator expects
    seen: ClassVar[list[bytes]] = []
    connections: ClassVar[set[int]] = set()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(body)
        type(self).connections.add(id(self.connection))
        status = 500 if body == b"fail" else 200
        answer = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        # Like a server whose keep-alive timeout ran out: it closes without saying so.
        self.close_connection = body == b"close"

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen, _Handler.connections = [], set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/predict"
    httpd.shutdown()
    httpd.server_close()


def test_the_closed_loop_counts_every_answer_and_reuses_its_connections(server: str) -> None:
    stats, error = closed_loop(Target(server, [b"a", b"b"]), concurrency=2, duration_s=0.5)
    assert error == ""
    assert stats.errors == 0
    assert stats.ok == len(_Handler.seen) > 10
    assert set(_Handler.seen) == {b"a", b"b"}
    # Two clients, two kept-alive connections, however many requests.
    assert len(_Handler.connections) == 2


def test_a_request_on_a_connection_the_server_closed_is_sent_again_on_a_new_one(server: str) -> None:
    stats, error = closed_loop(Target(server, [b"close"]), concurrency=1, duration_s=0.3)

    assert (stats.errors, error) == (0, "")
    # Every request reached the server once: the resent ones had not been read before.
    assert stats.ok == len(_Handler.seen) > 3


def test_an_answer_other_than_200_is_an_error_not_throughput(server: str) -> None:
    stats, error = closed_loop(Target(server, [b"fail"]), concurrency=1, duration_s=0.3)
    assert stats.ok == 0
    assert stats.errors > 0
    assert "HTTP 500" in error


def test_the_open_loop_sends_exactly_rate_times_duration(server: str) -> None:
    stats, _ = open_loop(Target(server, [b"a"]), rate_rps=100, duration_s=0.5, seed=3)
    assert stats.sent + stats.dropped == 50
    assert stats.ok == len(_Handler.seen) == 50
    assert stats.offered_rps == 100


def test_arrivals_beyond_the_in_flight_bound_are_dropped_and_counted() -> None:
    # With no connection allowed in flight, every arrival is dropped, none sent.
    stats, _ = open_loop(Target("http://127.0.0.1:9/x", [b"a"]), 50, 0.2, max_in_flight=0)
    assert (stats.dropped, stats.sent) == (10, 0)


def test_points_sent_one_after_another_continue_the_cycle_of_bodies(server: str) -> None:
    target = Target(server, [b"a", b"b", b"c"])
    open_loop(target, rate_rps=20, duration_s=0.1, seed=1)  # two requests: a, b
    open_loop(target, rate_rps=20, duration_s=0.1, seed=1)  # then c, a
    assert _Handler.seen == [b"a", b"b", b"c", b"a"]
