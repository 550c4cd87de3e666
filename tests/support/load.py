"""A bounded steady load of sync and async requests, and the ledger that checks its outcome.

Definitions (docs/reliability.md quotes them):

- *sent*: every request a client thread made;
- *unreachable*: the TCP connection failed (the api process was down): nothing was accepted;
- *refused*: 503 or 429 with ``Retry-After``: nothing was accepted, the client is told to retry;
- *accepted*: a sync request answered 200, or a job answered 202;
- *answered*: an accepted sync request (its 200 carried the answer) with exactly one audit row whose
  outputs equal the answer; an accepted job that ends ``succeeded`` with the model's own predictions;
- *failed*: a sync request answered 504 (no worker answer in time), or an accepted job that ends
  ``failed`` with its error in the job record: visible failures;
- *lost*: an accepted request that is neither answered nor failed when the wait ends: must be 0.

Anything else (a 5xx other than 503/504, a 503 without ``Retry-After``, a client-side timeout, a
wrong answer) is a defect the checks report.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import requests
import xgboost

KINDS = ("v1", "v2", "job")


@dataclass
class Outcome:
    """What one request got back."""

    kind: str
    rows: np.ndarray
    status: int = 0
    body: Any = None
    request_id: str = ""
    job_id: str = ""
    retry_after: str | None = None
    error: str = ""
    elapsed_s: float = 0.0
    #: Filled by the checks: answered, failed, refused, unreachable, lost or defect.
    verdict: str = ""


@dataclass
class Load:
    """``threads`` clients sending v1, v2 and job requests in turn until stopped."""

    base_url: str
    key: str
    model: str
    rows: np.ndarray
    threads: int = 3
    job_rows: int = 25
    client_timeout_s: float = 45.0
    #: Pause between a client's requests, so the load is steady rather than saturating 2 cores.
    pause_s: float = 0.05
    outcomes: list[Outcome] = field(default_factory=list)
    #: Requests sent and not yet come back (a fault injected while > 0 hits work in flight).
    in_flight: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        """Start the client threads."""
        for index in range(self.threads):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True, name=f"load-{index}")
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        """Stop sending and wait for every in-flight request to come back."""
        self._stop.set()
        for thread in self._workers:
            thread.join(self.client_timeout_s + 10)

    def accepted_since(self, mark: int) -> int:
        """Accepted requests among those recorded after the first ``mark`` outcomes."""
        with self._lock:
            return sum(1 for o in self.outcomes[mark:] if o.status in (200, 202))

    def summary_since(self, mark: int) -> str:
        """Outcomes recorded after ``mark`` by kind and status (or error), and requests still in flight."""
        with self._lock:
            counts = Counter(f"{o.kind} {o.status or o.error[:80]}" for o in self.outcomes[mark:])
            in_flight = self.in_flight
        return f"{dict(counts)}; in flight: {in_flight}"

    def mark(self) -> int:
        """The number of outcomes recorded so far."""
        with self._lock:
            return len(self.outcomes)

    def burst(self, jobs: int) -> None:
        """Submit ``jobs`` jobs at once from the calling thread (recorded like the rest): a backlog."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.key}"
        for index in range(jobs):
            start = (index * self.job_rows) % (len(self.rows) - self.job_rows)
            outcome = self._send(session, "job", self.rows[start : start + self.job_rows])
            with self._lock:
                self.outcomes.append(outcome)

    def _client(self, index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.key}"
        rng = np.random.default_rng(index)
        for turn in itertools.count(index):
            if self._stop.is_set():
                return
            kind = KINDS[turn % len(KINDS)]
            n = self.job_rows if kind == "job" else int(rng.integers(1, 4))
            start = int(rng.integers(0, len(self.rows) - n))
            with self._lock:
                self.in_flight += 1
            outcome = self._send(session, kind, self.rows[start : start + n])
            with self._lock:
                self.in_flight -= 1
                self.outcomes.append(outcome)
            time.sleep(self.pause_s)

    def _send(self, session: requests.Session, kind: str, rows: np.ndarray) -> Outcome:
        outcome = Outcome(kind, rows)
        if kind == "v1":
            url, body = f"{self.base_url}/v1/models/{self.model}:predict", {"instances": rows.tolist()}
        elif kind == "v2":
            tensor = {
                "name": "x",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
            url, body = f"{self.base_url}/v2/models/{self.model}/infer", {"inputs": [tensor]}
        else:
            url, body = f"{self.base_url}/v1/models/{self.model}/jobs", {"instances": rows.tolist()}
        started = time.monotonic()
        try:
            response = session.post(url, json=body, timeout=self.client_timeout_s)
        except requests.ConnectionError as exc:
            outcome.error = f"connection: {type(exc).__name__}"
        except requests.Timeout:
            outcome.error = "client timeout"
        else:
            outcome.status = response.status_code
            outcome.retry_after = response.headers.get("Retry-After")
            outcome.request_id = response.headers.get("X-Request-ID", "")
            try:
                outcome.body = response.json()
            except ValueError:
                outcome.body = response.text[:500]
            if kind == "job" and response.status_code == 202:
                outcome.job_id = outcome.body["id"]
        outcome.elapsed_s = time.monotonic() - started
        return outcome


def assert_nothing_lost(counts: dict[str, Any]) -> None:
    """The suite's contract: every accepted request answered or visibly failed, refusals prompt."""
    assert counts["accepted"] > 0, f"the load never got through: {counts}"
    assert counts["lost"] == 0, counts
    assert counts["accepted"] == counts["answered"] + counts["failed"], counts
    assert counts["hangs"] == 0, f"requests hung past the client timeout: {counts}"
    assert not counts["defects"], counts["defects"][:20]


def _answer_of(outcome: Outcome) -> np.ndarray:
    if outcome.kind == "v1":
        return np.asarray(outcome.body["predictions"], dtype=np.float32)
    return np.asarray(outcome.body["outputs"][0]["data"], dtype=np.float32)


def settle(
    outcomes: list[Outcome],
    *,
    base_url: str,
    key: str,
    booster: xgboost.Booster,
    database_url: str,
    timeout: float = 90.0,
) -> dict[str, Any]:
    """Wait until every accepted request is answered or failed; classify each; return the counts.

    Sync answers and job results are compared with the booster's own predict
    (the same request answered twice with different results would show here and in
    its audit row). Polls with a deadline; what is still open then is *lost*.
    """
    expected = _predictor(booster)
    defects: list[str] = []
    open_jobs: dict[str, Outcome] = {}
    answered_sync: dict[str, Outcome] = {}
    for outcome in outcomes:
        if outcome.status == 200 and outcome.kind in ("v1", "v2"):
            got = _answer_of(outcome)
            if not np.array_equal(got, expected(outcome.rows)):
                defects.append(f"{outcome.kind} {outcome.request_id}: wrong answer {got} ")
            answered_sync[outcome.request_id] = outcome
        elif outcome.status == 202 and outcome.kind == "job":
            open_jobs[outcome.job_id] = outcome
        elif outcome.status == 504:
            outcome.verdict = "failed"
        elif outcome.status in (503, 429) and outcome.retry_after:
            outcome.verdict = "refused"
        elif outcome.status == 0 and outcome.error.startswith("connection"):
            outcome.verdict = "unreachable"
        else:
            outcome.verdict = "defect"
            defects.append(f"{outcome.kind}: {outcome.status} {outcome.error} {str(outcome.body)[:300]}")

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    deadline = time.monotonic() + timeout
    audit: dict[str, Any] = {}
    while time.monotonic() < deadline:
        for job_id, outcome in list(open_jobs.items()):
            try:
                view = session.get(f"{base_url}/v1/jobs/{job_id}", timeout=10).json()
            except (requests.RequestException, ValueError):
                continue  # the api may still be coming back; poll again
            if view.get("status") == "succeeded":
                got = np.asarray(view["predictions"], dtype=np.float32)
                if not np.array_equal(got, expected(outcome.rows)):
                    defects.append(f"job {job_id}: wrong result")
                outcome.verdict = "answered"
                del open_jobs[job_id]
            elif view.get("status") == "failed":
                outcome.body = view
                outcome.verdict = "failed" if view.get("error") else "defect"
                if not view.get("error"):
                    defects.append(f"job {job_id}: failed without an error in its record")
                del open_jobs[job_id]
        audit = _audit_rows(database_url, list(answered_sync))
        if not open_jobs and len(audit) == len(answered_sync):
            break
        time.sleep(0.5)

    for request_id, outcome in answered_sync.items():
        row = audit.get(request_id)
        if row is None:
            outcome.verdict = "lost"
            continue
        outputs, status = row
        outcome.verdict = "answered"
        if status != "ok" or (
            outputs is not None
            and not np.array_equal(np.asarray(outputs, dtype=np.float32).ravel(), _answer_of(outcome).ravel())
        ):
            defects.append(f"{request_id}: audit row ({status}) disagrees with the answer the client got")
    for outcome in open_jobs.values():
        outcome.verdict = "lost"
    defects.extend(_duplicate_chunks(database_url, [o.job_id for o in outcomes if o.job_id]))
    hangs = [o for o in outcomes if o.error == "client timeout"]
    counts = Counter(o.verdict for o in outcomes)
    return {
        "sent": len(outcomes),
        "accepted": sum(1 for o in outcomes if o.status in (200, 202)),
        "answered": counts["answered"],
        "failed": counts["failed"],
        "refused": counts["refused"],
        "unreachable": counts["unreachable"],
        "lost": counts["lost"],
        "defects": defects,
        "hangs": len(hangs),
        "by_kind": {kind: sum(1 for o in outcomes if o.kind == kind) for kind in KINDS},
        "max_latency_s": round(max((o.elapsed_s for o in outcomes), default=0.0), 2),
    }


def _predictor(booster: xgboost.Booster):
    def predict(rows: np.ndarray) -> np.ndarray:
        return booster.predict(xgboost.DMatrix(rows, feature_names=booster.feature_names))

    return predict


def _audit_rows(database_url: str, request_ids: list[str]) -> dict[str, Any]:
    if not request_ids:
        return {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT request_id, outputs, status FROM prediction_records WHERE request_id = ANY(%s)",
            (request_ids,),
        ).fetchall()
    return {request_id: (outputs, status) for request_id, outputs, status in rows}


def _duplicate_chunks(database_url: str, job_ids: list[str]) -> list[str]:
    if not job_ids:
        return []
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT job_id, chunk_index, count(*) FROM job_chunks WHERE job_id = ANY(%s) "
            "GROUP BY job_id, chunk_index HAVING count(*) > 1",
            ([uuid.UUID(j) for j in job_ids],),
        ).fetchall()
    return [f"job {job_id} chunk {index} stored {n} times" for job_id, index, n in rows]
