"""Where an async job's time goes: ``python -m benchmarks.jobs_probe`` (issue #8, async jobs).

Starts the platform the way ``make bench`` does (benchmarks/run.py: its own database and vhost,
gunicorn api with one process (the default), a Celery worker with concurrency 2,
``OMP_NUM_THREADS=1``), then runs ``run_job`` (submit one job, long-poll ``GET /v1/jobs/{id}?wait=``
until it ends) for each model and job size and prints, per job: rows/s from submit to done (the
benchmark's figure), the in-process limit it is measured against, and a breakdown read back from the database:

- ``json``: the api's decoding of the same body (``decode_v1(orjson.loads(body))``) in this
  process, without HTTP, the database or the broker: the floor of ``accept`` for a JSON upload;
- ``accept``: POST until the 202 (read, decode, validate, record, publish every chunk);
- ``first``/``stored``: submit until the first / the last chunk was stored by a worker;
- ``seen``: submit until the client saw ``succeeded`` (the last chunk, the long poll's wake-up and
  answer);
- ``fetch``: one more ``GET /v1/jobs/{id}`` of the finished job (assembling and sending the predictions).

Settings (env): PROBE_SIZES job rows (10000,100000), PROBE_MODELS (small,large), PROBE_API_WORKERS
gunicorn processes of the api (1), PROBE_REPEAT
jobs per point, best kept (2), PROBE_BODY how jobs are sent: ``json`` (v1 instances) or ``binary``
(a v2 body framed with binary tensors), PROBE_CHUNK_ROWS values of ``API_JOB_CHUNK_ROWS`` to compare, the
api restarted for each (default: the api's own), PROBE_PROFILE a folder: record py-spy (``--gil
-f raw``: Python time; ``PROBE_PROFILE_GIL=0`` samples every busy thread, native code included) on
the api and the worker (main and pool processes) during the jobs, one file each.
Other settings of the services pass through from the environment. The api's body limit is
raised to 512 MiB here so that 100,000 rows of the large model (about 200 MB of JSON) are accepted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import requests

from benchmarks import inprocess
from benchmarks.models import BenchModel
from benchmarks.probe_stack import probe_stack
from benchmarks.run import ROOT, Stack, run_job
from inference_api.decoding import decode_v1

PY_SPY = ROOT / ".tools" / "bench-venv" / "bin" / "py-spy"


@dataclasses.dataclass(frozen=True)
class _Answered(BenchModel):
    """A bench model whose expected answers are computed once, before any job is timed.

    ``run_job`` checks the answers between taking its end time and returning; precomputed, that
    check takes milliseconds, so the job's start can be recovered from the time it returns.
    """

    answers: np.ndarray | None = None

    def expected(self, rows: np.ndarray) -> np.ndarray:
        """The precomputed answers for the first ``len(rows)`` rows."""
        if self.answers is None or len(rows) > len(self.answers):
            raise ValueError(f"no precomputed answers for {len(rows)} rows")
        return self.answers[: len(rows)]


def _sized(model: BenchModel, rows: int) -> _Answered:
    """The model with ``rows`` rows to send (its rows repeated when it has fewer) and their answers."""
    matrix = np.tile(model.rows, (-(-rows // len(model.rows)), 1))[:rows]
    fields = {field.name: getattr(model, field.name) for field in dataclasses.fields(BenchModel)}
    return _Answered(**{**fields, "rows": matrix}, answers=model.expected(matrix))


def json_floor(model: BenchModel, rows: int) -> float:
    """Seconds the api's own decoding of the job's body takes in this process (best of two).

    ``decode_v1(orjson.loads(body))``: what every accept pays before a chunk is published.
    """
    body = orjson.dumps({"instances": model.rows[:rows].tolist()})
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        decode_v1(orjson.loads(body), model.features)
        best = min(best, time.perf_counter() - start)
    return best


def _breakdown(database_url: str, started: float) -> dict[str, Any]:
    """Seconds from ``started`` (Unix time) until the newest job's first and last chunk were stored."""
    with psycopg.connect(database_url) as conn:
        job_id, chunks, first, last = conn.execute(
            "SELECT j.id, j.n_chunks, min(c.created_at), max(c.created_at) FROM jobs j"
            " JOIN job_chunks c ON c.job_id = j.id GROUP BY j.id ORDER BY j.created_at DESC LIMIT 1"
        ).fetchone()
    return {
        "job_id": str(job_id),
        "chunks": chunks,
        "first_s": first.timestamp() - started,
        "stored_s": last.timestamp() - started,
    }


def measure(
    url: str, key: str, database_url: str, model: BenchModel, rows: int, body: str = "json"
) -> dict[str, Any]:
    """One job through ``run_job`` (``body``: json or binary), with the breakdown of its time."""
    result = run_job(url, key, model, rows, body)
    if result.get("status") != "succeeded":
        return result
    # run_job's clock starts after it has encoded the body: its start as Unix time.
    started = time.time() - result["seconds"]
    result.update(_breakdown(database_url, started))
    fetch_start = time.perf_counter()
    answer = requests.get(
        f"{url}/v1/jobs/{result['job_id']}", headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    result["fetch_s"] = time.perf_counter() - fetch_start
    result["fetch_mb"] = len(answer.content) / 1e6
    return result


@contextlib.contextmanager
def profiling(folder: Path | None, stack: Stack) -> Iterator[None]:
    """py-spy on the api (gunicorn master and workers) and the worker (main and pool) meanwhile."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    targets = {"api": stack.api, "worker": stack.workers[0]}
    spies = [
        subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                # Only threads holding the GIL (Python time), or every non-idle thread (native
                # code such as the model's predict included) with PROBE_PROFILE_GIL=0.
                *(["--gil"] if os.environ.get("PROBE_PROFILE_GIL", "1") != "0" else []),
                "--subprocesses",
                "-f",
                "raw",
                "-r",
                "200",
                "-o",
                str(folder / f"{name}.txt"),
                "--pid",
                str(process.popen.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, process in targets.items()
        if process is not None
    ]
    time.sleep(1.0)  # py-spy attaches to each process
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(60)
        print(f"[probe] py-spy profiles in {folder}", flush=True)


COLUMNS = (
    f"{'model':5} {'rows':>7} {'chunks':>6} {'rows/s':>10} {'limit':>10} {'share':>6} {'json':>7}"
    f" {'accept':>7} {'first':>7} {'stored':>7} {'seen':>7} {'fetch':>7} {'equal':>5}"
)


def _line(model: str, rows: int, limit: float, floor: float, job: dict[str, Any]) -> str:
    if job.get("status") != "succeeded":
        return f"{model:5} {rows:>7} {job}"
    share = job["rows_s"] / limit
    return (
        f"{model:5} {rows:>7} {job['chunks']:>6} {job['rows_s']:>10,.0f} {limit:>10,.0f} {share:>6.1%}"
        f" {floor:>7.3f} {job['accept_s']:>7.3f} {job['first_s']:>7.3f} {job['stored_s']:>7.3f}"
        f" {job['seconds']:>7.3f} {job['fetch_s']:>7.3f} {'yes' if job['equal'] else 'NO':>5}"
    )


def _settings() -> dict[str, Any]:
    env = os.environ
    return {
        "sizes": [int(size) for size in env.get("PROBE_SIZES", "10000,100000").split(",")],
        "names": env.get("PROBE_MODELS", "small,large").split(","),
        "repeat": int(env.get("PROBE_REPEAT", "2")),
        "body": env.get("PROBE_BODY", "json"),
        # Empty: the api's own API_JOB_CHUNK_ROWS (its default, or the one in the environment).
        "chunk_rows": [value for value in env.get("PROBE_CHUNK_ROWS", "").split(",") if value],
        "profile": Path(env["PROBE_PROFILE"]).resolve() if env.get("PROBE_PROFILE") else None,
    }


def main() -> int:
    """Start the stack, run the jobs (for each chunk size asked for), print the table."""
    settings = _settings()
    # The api's body limit raised so that 100,000 rows of the large model as JSON are accepted.
    body_limit = os.environ.get("API_MAX_BODY_BYTES", str(512 << 20))
    with probe_stack("jobs-probe", settings["names"], "predict,jobs", API_MAX_BODY_BYTES=body_limit) as probe:
        stack, key, models = probe.stack, probe.key, probe.models
        limits = {
            name: max(point["rows_s"] for point in inprocess.measure(model, 0.5))
            for name, model in models.items()
        }
        print(f"[probe] in-process limit (one thread, best batch): {limits}", flush=True)
        inputs = {
            (name, rows): _sized(model, rows) for name, model in models.items() for rows in settings["sizes"]
        }
        floors = {point: json_floor(sized, point[1]) for point, sized in inputs.items()}
        stack.start_worker(concurrency=2)
        for chunk_rows in settings["chunk_rows"] or [""]:
            if stack.api is not None:
                stack.api.stop()
            extra = {"API_JOB_CHUNK_ROWS": chunk_rows} if chunk_rows else {}
            stack.start_api(workers=int(os.environ.get("PROBE_API_WORKERS", "1")), **extra)
            # Warm up: models loaded in both pool processes, connections open.
            for model in models.values():
                for _ in range(2):
                    run_job(stack.url, key, model, 1000)
            print(f"[probe] API_JOB_CHUNK_ROWS={chunk_rows or 'default'}", flush=True)
            print(COLUMNS, flush=True)
            folder = settings["profile"]
            if folder is not None and chunk_rows:
                folder = folder / f"chunk-{chunk_rows}"
            with profiling(folder, stack):
                for (name, rows), sized in inputs.items():
                    jobs = [
                        measure(stack.url, key, probe.env["DATABASE_URL"], sized, rows, settings["body"])
                        for _ in range(settings["repeat"])
                    ]
                    best = max(jobs, key=lambda job: job.get("rows_s", 0.0))
                    print(_line(name, rows, limits[name], floors[name, rows], best), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
