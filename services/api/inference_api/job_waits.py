"""Long-polling for a job's end: ``GET /v1/jobs/{id}?wait=S`` answers as soon as the job ends.

Polling a job costs the client a round trip and the api a request each time, and it sees the
end one polling interval late. Instead a client may ask the api to hold the request until the
job succeeds or fails, or ``wait`` seconds pass. On PostgreSQL the worker sends a notification
(``NOTIFY``, channel :data:`inference_common.jobs.JOB_DONE_CHANNEL`, the job id as payload) in the
transaction that ends the job; one listener thread per api process wakes the requests waiting
for that job. A waiting request also looks at the job again every
:attr:`JobWaiter.recheck_s` (1 s while the listener is connected, 50 ms otherwise), so a
notification lost while the listener reconnects, a job failed from the web tier or a database
without notifications (SQLite: the demo) costs at most that long.

Each waiting request holds one of the process's gunicorn threads, so at most
``API_JOB_MAX_WAITERS`` wait at once per process; past that a request is answered at once, as
if it had not asked to wait (the client simply asks again).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from sqlalchemy import Engine

from inference_common.jobs import JOB_DONE_CHANNEL

logger = logging.getLogger(__name__)

#: Seconds between two looks at a waited-for job while notifications are (and are not) received.
RECHECK_LISTENING_S = 1.0
RECHECK_POLLING_S = 0.05
#: Seconds the listener waits before reconnecting after losing its connection.
RECONNECT_S = 1.0


class JobWaiter:
    """Wakes the requests of this process that wait for jobs to end."""

    def __init__(self, engine: Engine, max_waiters: int) -> None:
        self._engine = engine
        self._slots = threading.BoundedSemaphore(max_waiters) if max_waiters > 0 else None
        self._lock = threading.Lock()
        self._waiting: dict[str, set[threading.Event]] = {}
        self._listening = threading.Event()
        self._listener: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def recheck_s(self) -> float:
        """How long a waiting request may sleep before it looks at its job again."""
        return RECHECK_LISTENING_S if self._listening.is_set() else RECHECK_POLLING_S

    @contextlib.contextmanager
    def watch(self, job_id: uuid.UUID) -> Iterator[threading.Event | None]:
        """An event set when ``job_id`` may have ended; None when no more requests may wait.

        Watch before reading the job's status: a notification sent between the read and the
        wait then still sets the event.
        """
        if self._slots is None or not self._slots.acquire(blocking=False):
            yield None
            return
        self._start_listener()
        event = threading.Event()
        key = str(job_id)
        with self._lock:
            self._waiting.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiting.get(key)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiting[key]
            self._slots.release()

    def notify(self, job_id: str) -> None:
        """Wake every request waiting for ``job_id`` (called by the listener)."""
        with self._lock:
            events = list(self._waiting.get(job_id, ()))
        for event in events:
            event.set()

    def stop(self) -> None:
        """Stop listening (tests); waiting requests fall back to polling."""
        self._stopped.set()

    def _start_listener(self) -> None:
        # Started on the first wait, in the gunicorn worker that serves it (threads do not
        # survive a fork), and only where the database can notify.
        if self._listener is not None or self._engine.dialect.name != "postgresql":
            return
        with self._lock:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen_forever, name="job-waits", daemon=True)
                self._listener.start()

    def _conninfo(self) -> str:
        url = self._engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _listen_forever(self) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._conninfo(), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {JOB_DONE_CHANNEL}")
                    self._listening.set()
                    logger.info("listening for ended jobs on channel %s", JOB_DONE_CHANNEL)
                    self._dispatch(conn)
            except Exception as exc:  # whatever it was, keep trying: waiters poll meanwhile
                logger.warning("job notifications unavailable (waiting requests poll): %s", exc)
            finally:
                self._listening.clear()
                # Whatever ended while not listening is found by the waiters' own rechecks.
                self._wake_all()
            self._stopped.wait(RECONNECT_S)

    def _dispatch(self, conn: Any) -> None:
        while not self._stopped.is_set():
            # A timeout, so that stop() is seen; notifies() ends quietly after it.
            for notification in conn.notifies(timeout=RECHECK_LISTENING_S):
                self.notify(notification.payload)

    def _wake_all(self) -> None:
        with self._lock:
            events = [event for events in self._waiting.values() for event in events]
        for event in events:
            event.set()


def wait_until_ended(
    waiter: JobWaiter,
    job_id: uuid.UUID,
    seconds: float,
    read: Callable[[], dict[str, Any]],
    ended: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """``read()`` the job's view, again each time it may have ended, until ``ended(view)`` or
    ``seconds`` pass; the last view read."""
    deadline = time.monotonic() + seconds
    with waiter.watch(job_id) as event:
        view = read()
        if event is None:
            return view
        while not ended(view):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            event.wait(min(left, waiter.recheck_s))
            event.clear()
            view = read()
    return view
