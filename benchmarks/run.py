"""``make bench``: one bounded run comparing the platform with the in-process limit and two peers.

Order of work (each part is skipped, with a note in the report, once the total budget is spent):
1. the in-process limit: the same booster's ``inplace_predict`` on the same rows, batch 1..65536;
2. this platform (gunicorn api + Celery worker on RabbitMQ/PostgreSQL, its own database, vhost and
   queue prefix): single-row v1 and v2 requests and async jobs, worker batching on and off; with
   batching on also the binary tensor extension, 1000-row requests, the response cache (hits and
   misses) and one point with CPU accounting and py-spy profiles;
3. the naive Celery design (benchmarks/naive_celery.py), on its own vhost;
4. MLServer with its XGBoost runtime (benchmarks/mlserver_peer.py), adaptive batching on and off;
   then with a pool of inference processes (``parallel_workers``), against its default of none;
5. (after 4, with MLServer installed) the platform, MLServer and the naive design at once, taking
   turns at the single-row saturation point and at the p50/p99 point, so that their ratios do not
   depend on when each part ran.

Everything listens on 127.0.0.1. Settings (env): BENCH_SECONDS per load point (4), BENCH_RATES
offered loads in requests/s (50,100,200,400,800), BENCH_FIXED_RPS the load of the p50/p99
comparison (50) and BENCH_FIXED_SECONDS its duration (12), BENCH_CONCURRENCY closed-loop clients
for the saturation point (16), BENCH_REPEATS closed-loop repeats (3), BENCH_MAX_SECONDS the total
cap (1680), BENCH_JOB_ROWS rows of an async job (10000), BENCH_SYSTEMS which parts run
(inprocess,platform,naive,mlserver), BENCH_WORKER_DEVICE the platform worker's WORKER_DEVICE (cpu),
BENCH_PROFILE=0 to skip py-spy, BENCH_REDIS_URL the response cache's Redis, BENCH_OUT the output
folder (docs/benchmarks).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform as host
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import requests

from benchmarks import inprocess, mlserver_peer
from benchmarks.load import Target, closed_loop, open_loop
from benchmarks.models import BenchModel, train_all
from benchmarks.profile import CpuMeter, Profiler, process_tree, processes_named, top_functions
from benchmarks.report import write_report
from benchmarks.stats import median_run

ROOT = Path(__file__).resolve().parents[1]
# The integration suite's process helpers start the real services exactly as the tests do.
sys.path.insert(0, str(ROOT / "tests"))
from support.stack import (  # noqa: E402
    ADMIN_DATABASE_URL,
    BIN,
    Process,
    Stack,
    free_port,
    manage,
    rabbitmqctl,
    scratch_backends,
)

#: py-spy, installed in the benchmark's own venv (requirements/bench.txt).
BENCH_PY_SPY = ROOT / ".tools" / "bench-venv" / "bin" / "py-spy"
#: Rows cycled through by single-row clients (as Python lists: no numpy work in the load threads).
REQUEST_ROWS = 512
#: The worker's default micro-batch (WORKER_BATCH_MAX_SIZE, WORKER_BATCH_MAX_WAIT_MS: 0, an idle pool
#: process takes a request at once) and MLServer's adaptive batching (max_batch_size, max_batch_time:
#: its batcher waits for a batch to fill, so it needs a time; 2 ms, the worker's default before).
BATCH_SIZE, BATCH_MS, MLSERVER_BATCH_MS = 64, 0.0, 2.0

#: Seconds to wait after a point with dropped or failed requests (an overloaded point) before the
#: next: in one run a closed-loop point started behind the backlog of the 800 req/s point before it.
SETTLE_S = 3.0


class Bench:
    """Settings, the time budget and the measured results of one run."""

    def __init__(self) -> None:
        env = os.environ
        self.seconds = float(env.get("BENCH_SECONDS", "4"))
        self.rates = [float(r) for r in env.get("BENCH_RATES", "50,100,200,400,800").split(",")]
        self.fixed_rps = float(env.get("BENCH_FIXED_RPS", "50"))
        # The p50/p99 comparison point runs longer than the others: at 50 req/s for 4 s its p99
        # would be the second-worst of 200 requests; 12 s gives 600 (the p99 is the 6th worst).
        self.fixed_seconds = float(env.get("BENCH_FIXED_SECONDS", "12"))
        self.concurrency = int(env.get("BENCH_CONCURRENCY", "16"))
        self.repeats = int(env.get("BENCH_REPEATS", "3"))
        self.max_seconds = float(env.get("BENCH_MAX_SECONDS", "1680"))
        self.worker_device = env.get("BENCH_WORKER_DEVICE", "cpu")
        self.profile = env.get("BENCH_PROFILE", "1") != "0"
        self.job_rows = int(env.get("BENCH_JOB_ROWS", "10000"))
        self.systems = set(env.get("BENCH_SYSTEMS", "inprocess,platform,naive,mlserver").split(","))
        self.out = Path(env.get("BENCH_OUT", str(ROOT / "docs" / "benchmarks")))
        self.mlserver_venv = Path(
            env.get("BENCH_MLSERVER_VENV", str(ROOT / ".tools" / "bench-mlserver-venv"))
        )
        self.started = time.monotonic()
        self.results: dict[str, Any] = {
            "inprocess": {},
            "points": [],
            "jobs": [],
            "checks": [],
            "notes": [],
            "cpu": [],
            "profiles": {},
            "paired": [],
        }

    def left(self) -> float:
        """Seconds left of the total budget."""
        return self.max_seconds - (time.monotonic() - self.started)

    def note(self, text: str) -> None:
        """Record a note for the report (and show progress)."""
        print(f"[bench] note: {text}", flush=True)
        self.results["notes"].append(text)

    def curve(
        self, labels: dict[str, str], target: Target, rates: list[float] | None = None, concurrency: int = 0
    ) -> None:
        """Open-loop points at every offered rate, then the closed-loop saturation point, repeated."""
        for rate in self.rates if rates is None else rates:
            seconds = max(self.seconds, self.fixed_seconds) if rate == self.fixed_rps else self.seconds
            self._point(
                labels,
                "open",
                lambda rate=rate, seconds=seconds: open_loop(target, rate, seconds, seed=int(rate)),
            )
        for repeat in range(self.repeats):
            self._point(
                labels,
                "closed",
                lambda: closed_loop(target, concurrency or self.concurrency, self.seconds),
                repeat,
            )

    def cpu_point(self, labels: dict[str, str], target: Target, groups: dict[str, list[int]]) -> None:
        """One more closed-loop point, with the CPU each group of processes spent per request.

        With profiling on, py-spy samples the groups' Python processes meanwhile (the load
        generator excepted: its CPU is only counted); the stacks go to ``profiles/<group>.folded``.
        """
        if self.left() < self.seconds + 30:
            self.note(f"skipped the CPU point of {labels} (total budget spent)")
            return
        groups = {**groups, "load generator": [os.getpid()]}
        profiler = Profiler(BENCH_PY_SPY, self.out / "profiles")
        spied = {name: pids for name, pids in groups.items() if name in ("api", "worker")}
        profiling = self.profile and bool(spied) and profiler.available
        meter = CpuMeter(groups)
        if profiling:
            profiler.start(spied, self.seconds)
        meter.start()
        stats, error = closed_loop(target, self.concurrency, self.seconds)
        cpu = meter.stop(stats.ok, self.seconds)
        entry = {**labels, "achieved_rps": stats.achieved_rps, "cpu": cpu, "last_error": error}
        self.results["cpu"].append(entry)
        print(f"[bench] CPU {labels}: {stats.achieved_rps:.1f}/s {cpu}", flush=True)
        if profiling:
            for name, folded in profiler.stop().items():
                self.results["profiles"][name] = {**top_functions(folded), "file": f"profiles/{folded.name}"}

    def _point(
        self, labels: dict[str, str], mode: str, measure: Callable[[], tuple[Any, str]], repeat: int = 0
    ) -> None:
        if self.left() < self.seconds + 20:
            self.note(f"skipped {mode} point of {labels} (total budget spent)")
            return
        stats, error = measure()
        if stats.dropped or stats.errors:
            # Offered beyond saturation: the server still holds (and the queue still has) what the
            # client gave up on; let it drain so that the next point does not start behind it.
            time.sleep(SETTLE_S)
        point = {**labels, "mode": mode, "repeat": repeat, **stats.as_dict(), "last_error": error}
        self.results["points"].append(point)
        print(
            f"[bench] {labels} {mode} offered={stats.offered_rps:g} achieved={stats.achieved_rps:.1f}/s "
            f"p50={stats.p50_ms:.1f}ms p99={stats.p99_ms:.1f}ms errors={stats.errors} dropped={stats.dropped}"
            + (f" ({error})" if error else ""),
            flush=True,
        )

    def check(self, system: str, model: BenchModel, answer: list[float]) -> None:
        """Record whether a system answered the model's own predictions for the first rows."""
        expected = model.expected(model.rows[: len(answer)])
        same = bool(np.allclose(np.asarray(answer, dtype=np.float64), expected, rtol=0, atol=1e-6))
        self.results["checks"].append(
            {"system": system, "model": model.name, "rows": len(answer), "equal": same}
        )
        if not same:
            self.note(
                f"{system} answered {answer[:3]}... for {model.name}, the model says {expected[:3].tolist()}"
            )


# -- clients ------------------------------------------------------------------------
def _rows(model: BenchModel) -> list[list[float]]:
    return model.rows[:REQUEST_ROWS].tolist()


def v1_body(rows: list[list[float]]) -> dict[str, Any]:
    """KServe v1 ``:predict`` body."""
    return {"instances": rows}


def v2_body(rows: list[list[float]]) -> dict[str, Any]:
    """Open Inference Protocol v2 body: one FP32 tensor."""
    flat = [value for row in rows for value in row]
    return {
        "inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP32", "data": flat}]
    }


#: Rows per request of the large-request points (the api's sync limit is API_MAX_SYNC_ROWS, 1024).
LARGE_ROWS = 1000
#: Clients of the large-request points (each request is 1000 rows of work already).
LARGE_CONCURRENCY = 4
#: Redis of the response cache points (the project's machines run one on 127.0.0.1).
CACHE_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
#: Distinct rows of the all-miss cache points (more than a closed loop sends in its repeats).
CACHE_MISS_ROWS = 30000
#: Header of the binary tensor extension: the length of the JSON part of a framed body.
HEADER_LENGTH = "Inference-Header-Content-Length"


def v2_binary_body(rows: list[list[float]] | np.ndarray) -> tuple[bytes, int]:
    """A framed v2 body (binary tensor extension): JSON header, then raw little-endian FP32 rows.

    Asks for the output in binary too, as tritonclient does by default. Returns the body and the
    length of its JSON part (the Inference-Header-Content-Length header).
    """
    tensor = np.ascontiguousarray(rows, dtype="<f4")
    header = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(tensor.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": tensor.nbytes},
            }
        ],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    encoded = json.dumps(header).encode()
    return encoded + tensor.tobytes(), len(encoded)


def binary_target(url: str, row_sets: list[np.ndarray], key: str) -> Target:
    """Framed v2 requests, one per row set; every set has the same shape, so one header length fits all."""
    framed = [v2_binary_body(rows) for rows in row_sets]
    lengths = {length for _, length in framed}
    assert len(lengths) == 1, "row sets of one target must share a shape"
    headers = {**_auth(key), HEADER_LENGTH: str(lengths.pop())}
    return Target(url, [body for body, _ in framed], "application/octet-stream", headers)


def binary_outputs(response: requests.Response) -> list[float]:
    """The FP32 outputs of a framed v2 answer."""
    length = int(response.headers[HEADER_LENGTH])
    return np.frombuffer(response.content[length:], dtype="<f4").astype(float).tolist()


def http_target(
    url: str, body: Callable[[list[list[float]]], dict], rows: list[list[float]], key: str = ""
) -> Target:
    """Single-row requests to ``url``, one pre-encoded body per row, cycled through."""
    return Target(url, [json.dumps(body([row])).encode() for row in rows], headers=_auth(key) if key else {})


def _outputs(answer: dict[str, Any]) -> list[float]:
    if "predictions" in answer:
        return [float(value) for value in answer["predictions"]]
    return [float(value) for value in answer["outputs"][0]["data"]]


def wait_for(condition: Callable[[], bool], timeout: float, process: Process | None = None) -> None:
    """Poll ``condition`` until true; fail with the process log on timeout or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if condition():
                return
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited early:\n{process.tail()}")
        time.sleep(0.3)
    raise RuntimeError(f"not ready within {timeout}s" + (f":\n{process.tail()}" if process else ""))


def spawn(name: str, args: list[str], env: dict[str, str], logs: Path, cwd: Path = ROOT) -> Process:
    """Start a process in its own session (the stack helpers stop it and its children)."""
    log = logs / f"{name}.log"
    popen = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    return Process(name, popen, log)


# -- infrastructure -----------------------------------------------------------------
@contextlib.contextmanager
def infra(run_id: str, work: Path) -> Iterator[dict[str, str]]:
    """A database (migrated) and two vhosts of this run's own; dropped afterwards."""
    name = f"bench_{run_id}"
    with scratch_backends(name, [name, f"{name}_naive"]) as (database_url, (broker_url, naive_broker_url)):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "NAIVE_BROKER_URL": naive_broker_url,
            "MODEL_STORE": str(work / "store"),
            "OMP_NUM_THREADS": "1",
            "OTEL_TRACES_EXPORTER": "none",
            "API_SYNC_TIMEOUT_S": "30",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        manage(env, "migrate", "--noinput", "-v", "0")
        yield env


# -- the parts ----------------------------------------------------------------------
def bench_inprocess(bench: Bench, models: dict[str, BenchModel]) -> None:
    """Part 1: the in-process limit."""
    for model in models.values():
        budget = min(1.0, bench.seconds / 4)
        bench.results["inprocess"][model.name] = points = inprocess.measure(model, budget)
        best = max(points, key=lambda p: p["rows_s"])
        print(
            f"[bench] in-process {model.name}: best {best['rows_s']:.0f} rows/s at batch {best['batch']}",
            flush=True,
        )


#: Seconds one long-polling ``GET /v1/jobs/{id}?wait=`` may wait (the api answers as the job ends).
JOB_WAIT_S = 60


#: Runs of each async job: one job is a single sub-second run, noisy on shared cores; the median is kept.
JOB_REPEATS = 3


def repeated_job(url: str, key: str, model: BenchModel, rows: int, body: str, repeats: int) -> dict[str, Any]:
    """``run_job`` ``repeats`` times: the run of median time, with every run's seconds in ``runs_s``.

    A failed run (a refusal, a failed job) is returned at once: it would fail again.
    """
    done = []
    for _ in range(repeats):
        job = run_job(url, key, model, rows, body)
        if job.get("status") != "succeeded":
            return job
        done.append(job)
    return median_run(done)


def run_job(url: str, key: str, model: BenchModel, rows: int, body: str = "json") -> dict[str, Any]:
    """Submit one async job of ``rows`` rows; long-poll until it ends; rows/s from submit to done.

    ``body`` is ``json`` (KServe v1 instances) or ``binary`` (a v2 body framed with binary tensors).
    """
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    if body == "binary":
        data, length = v2_binary_body(model.rows[:rows])
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(length)}
    else:
        data = json.dumps({"instances": model.rows[:rows].tolist()}).encode()
        headers = {"Content-Type": "application/json"}
    start = time.perf_counter()
    response = session.post(f"{url}/v1/models/{model.name}/jobs", data=data, headers=headers, timeout=120)
    if response.status_code != 202:
        return {
            "model": model.name,
            "rows": rows,
            "body": body,
            "error": f"HTTP {response.status_code}: {response.text[:200]}",
        }
    accepted = time.perf_counter() - start
    job_id = response.json()["id"]
    deadline = start + 180
    while time.perf_counter() < deadline:
        answer = session.get(f"{url}/v1/jobs/{job_id}", params={"wait": JOB_WAIT_S}, timeout=JOB_WAIT_S + 30)
        # orjson, as a client fetching many predictions would: the standard json module spent
        # 16 ms on the 100,000 predictions of a finished job (orjson 4 ms), inside the timed span.
        view = orjson.loads(answer.content)
        if view["status"] in ("succeeded", "failed"):
            break
    elapsed = time.perf_counter() - start
    result = {
        "model": model.name,
        "rows": rows,
        "body": body,
        "seconds": elapsed,
        "accept_s": accepted,
        "status": view["status"],
    }
    if view["status"] == "succeeded":
        result["rows_s"] = rows / elapsed
        result["equal"] = bool(
            np.allclose(view["predictions"], model.expected(model.rows[:rows]), rtol=0, atol=1e-6)
        )
    return result


def bench_platform(
    bench: Bench, models: dict[str, BenchModel], env: dict[str, str], logs: Path, run_id: str
) -> None:
    """Part 2: sync v1/v2 and async jobs through the platform, worker batching on then off."""
    for model in models.values():
        manage(
            env, "register_model", "--name", model.name, "--file", str(model.path), "--stage", "production"
        )
    key = manage(env, "create_api_key", "bench", "--scopes", "predict,jobs", "--rate-limit", "0")
    stack = Stack(env=env, logs=logs, prefix=f"bench-{run_id}")
    try:
        # The response cache is on in the api but off per model until bench_cache enables a policy;
        # registry lookups expire after 1 s so a policy change is seen at once.
        # As the chart runs it (api.config.accessLog: false): no line per request.
        api = stack.start_api(
            # One process, the default (services/api/gunicorn.conf.py): as the chart runs it.
            workers=1,
            API_ACCESS_LOG="false",
            CACHE_REDIS_URL=CACHE_REDIS_URL,
            CACHE_KEY_PREFIX=f"bench-{run_id}",
            API_CACHE_TTL_S="1",
        )
        for batching, size in (("on", BATCH_SIZE), ("off", 1)):
            if bench.left() < 60:
                bench.note(f"skipped platform with batching {batching} (total budget spent)")
                continue
            worker = stack.start_worker(
                concurrency=2,
                WORKER_BATCH_MAX_SIZE=str(size),
                WORKER_BATCH_MAX_WAIT_MS=str(BATCH_MS),
                WORKER_DEVICE=bench.worker_device,
            )
            for model in models.values():
                rows = _rows(model)
                v1 = f"{stack.url}/v1/models/{model.name}:predict"
                v2 = f"{stack.url}/v2/models/{model.name}/infer"
                first = requests.post(
                    v1, json=v1_body(rows[:4]), headers={"Authorization": f"Bearer {key}"}, timeout=60
                )
                bench.check(f"platform v1 (batching {batching})", model, _outputs(first.json()))
                labels = {"system": "platform", "model": model.name, "batching": batching}
                bench.curve({**labels, "api": "v1"}, http_target(v1, v1_body, rows, key))
                bench.curve({**labels, "api": "v2"}, http_target(v2, v2_body, rows, key))
                if batching == "on":
                    groups = {
                        "api": process_tree(api.popen.pid),
                        "worker": process_tree(worker.popen.pid),
                        "RabbitMQ and PostgreSQL": processes_named("beam.smp", "postgres"),
                    }
                    bench.cpu_point({**labels, "api": "v1"}, http_target(v1, v1_body, rows, key), groups)
                    bench_binary(bench, model, v2, key, labels)
                    bench_cache(bench, env, model, v1, key, labels)
                for body in ("json", "binary"):
                    for rows in (bench.job_rows, bench.job_rows * 10):
                        if bench.left() > 60:
                            job = repeated_job(stack.url, key, model, rows, body, JOB_REPEATS)
                            bench.results["jobs"].append({**job, "batching": batching})
                            print(f"[bench] job {model.name} batching {batching}: {job}", flush=True)
            worker.stop()
    finally:
        stack.stop()


def bench_binary(bench: Bench, model: BenchModel, v2: str, key: str, labels: dict[str, str]) -> None:
    """The binary tensor extension against JSON: single rows at the fixed load, and 1000-row requests."""
    rows = model.rows[:REQUEST_ROWS]
    framed, length = v2_binary_body(rows[:4])
    answer = requests.post(
        v2,
        data=framed,
        headers={**_auth(key), HEADER_LENGTH: str(length)},
        timeout=60,
    )
    bench.check("platform v2 binary tensors", model, binary_outputs(answer))
    singles = binary_target(v2, [rows[i : i + 1] for i in range(len(rows))], key)
    bench.curve({**labels, "api": "v2 binary"}, singles, rates=[bench.fixed_rps])
    large = [model.rows[i * LARGE_ROWS : (i + 1) * LARGE_ROWS] for i in range(4)]
    bench.curve(
        {**labels, "api": f"v2 json x{LARGE_ROWS}"},
        Target(v2, [json.dumps(v2_body(part.tolist())).encode() for part in large], headers=_auth(key)),
        rates=[],
        concurrency=LARGE_CONCURRENCY,
    )
    bench.curve(
        {**labels, "api": f"v2 binary x{LARGE_ROWS}"},
        binary_target(v2, large, key),
        rates=[],
        concurrency=LARGE_CONCURRENCY,
    )


def bench_cache(
    bench: Bench, env: dict[str, str], model: BenchModel, v1: str, key: str, labels: dict[str, str]
) -> None:
    """The response cache: every request a hit, then every request a miss (fresh rows), then off again."""
    manage(env, "set_response_cache", "--name", model.name, "--ttl-s", "600", "--max-entries", "100000")
    time.sleep(1.5)  # API_CACHE_TTL_S=1: the api sees the policy
    rows = _rows(model)
    session = requests.Session()
    session.headers.update(_auth(key))
    for row in rows:  # warm: each row answered once by a worker, then kept
        session.post(v1, json=v1_body([row]), timeout=30).raise_for_status()
    answer = session.post(v1, json=v1_body(rows[:1]), timeout=30)
    if answer.headers.get("X-Cache") != "hit":
        bench.note(
            f"response cache: a warmed row was answered with X-Cache {answer.headers.get('X-Cache')!r}"
        )
    bench.check("platform v1 (response cache hit)", model, _outputs(answer.json()))
    bench.curve(
        {**labels, "api": "v1 cache hit"}, http_target(v1, v1_body, rows, key), rates=[bench.fixed_rps]
    )
    # Rows never sent before: every request misses, is answered by a worker, and is stored.
    fresh = model.rows[REQUEST_ROWS : REQUEST_ROWS + CACHE_MISS_ROWS].tolist()
    bench.curve(
        {**labels, "api": "v1 cache miss"}, http_target(v1, v1_body, fresh, key), rates=[bench.fixed_rps]
    )
    manage(env, "set_response_cache", "--name", model.name, "--disable")
    time.sleep(1.5)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextlib.contextmanager
def naive_stack(env: dict[str, str], models: dict[str, BenchModel], logs: Path) -> Iterator[str]:
    """The naive Celery design (benchmarks/naive_celery.py) serving ``models``; yields its base URL
    once every model answers, stops it afterwards."""
    naive_env = {**env, "NAIVE_MODEL_DIR": str(next(iter(models.values())).path.parent)}
    # The celery command line takes BROKER_URL from the environment over the app's own broker.
    naive_env.pop("BROKER_URL", None)
    port = free_port()
    worker = spawn(
        "naive-worker",
        [
            str(BIN / "celery"),
            "-A",
            "benchmarks.naive_celery",
            "worker",
            "--concurrency",
            "2",
            "--without-mingle",
            "--without-gossip",
        ],
        naive_env,
        logs,
    )
    web = spawn(
        "naive-web",
        [
            str(BIN / "gunicorn"),
            "--workers",
            "2",
            "--threads",
            "8",
            "--bind",
            f"127.0.0.1:{port}",
            "benchmarks.naive_celery:web",
        ],
        naive_env,
        logs,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for model in models.values():
            url, row = f"{base}/v1/models/{model.name}:predict", _rows(model)[:1]
            wait_for(lambda url=url, row=row: requests.post(url, json=v1_body(row), timeout=5).ok, 60, worker)
        yield base
    finally:
        web.stop()
        worker.stop()


def bench_naive(bench: Bench, models: dict[str, BenchModel], env: dict[str, str], logs: Path) -> None:
    """Part 3: the naive Celery design, one task per request, default settings."""
    with naive_stack(env, models, logs) as base:
        for model in models.values():
            rows = _rows(model)
            url = f"{base}/v1/models/{model.name}:predict"
            bench.check(
                "naive Celery", model, _outputs(requests.post(url, json=v1_body(rows[:4]), timeout=30).json())
            )
            bench.curve(
                {"system": "naive", "model": model.name, "batching": "off", "api": "v1"},
                http_target(url, v1_body, rows),
            )


@contextlib.contextmanager
def mlserver(
    bench: Bench, models: dict[str, BenchModel], logs: Path, folder: Path, parallel_workers: int = 0
) -> Iterator[tuple[str, Process]]:
    """MLServer serving every model as ``<name>-batch`` and ``<name>-nobatch`` (its repository in
    ``folder``); yields its base URL and process once all are ready, stops it afterwards."""
    folder.mkdir()
    mlserver_peer.write_repository(folder, models, BATCH_SIZE, MLSERVER_BATCH_MS)
    port = free_port()
    mlserver_peer.server_settings(folder, port, free_port(), free_port(), parallel_workers)
    log = logs / f"{folder.name}.log"
    popen = mlserver_peer.start(bench.mlserver_venv, folder, log, parallel_workers)
    server = Process("mlserver", popen, log)
    base = f"http://127.0.0.1:{port}"
    try:
        names = [f"{m}-{s}" for m in models for s in ("batch", "nobatch")]
        wait_for(
            lambda: all(requests.get(f"{base}/v2/models/{n}/ready", timeout=5).ok for n in names), 120, server
        )
        yield base, server
    finally:
        server.stop()


def bench_mlserver(bench: Bench, models: dict[str, BenchModel], logs: Path, work: Path) -> None:
    """Part 4: MLServer's XGBoost runtime over v2 REST, adaptive batching on and off."""
    if not (bench.mlserver_venv / "bin" / "mlserver").exists():
        bench.note(f"MLServer skipped: no {bench.mlserver_venv}/bin/mlserver (make bench installs it)")
        return
    with mlserver(bench, models, logs, work / "mlserver") as (base, server):
        popen = server.popen
        for model in models.values():
            rows = _rows(model)
            for suffix, batching in (("batch", "on"), ("nobatch", "off")):
                url = f"{base}/v2/models/{model.name}-{suffix}/infer"
                answer = requests.post(url, json=v2_body(rows[:4]), timeout=30)
                bench.check(f"MLServer (batching {batching})", model, _outputs(answer.json()))
                labels = {"system": "mlserver", "model": model.name, "batching": batching, "api": "v2"}
                bench.curve(labels, http_target(url, v2_body, rows))
                if batching == "on":
                    groups = {"mlserver": process_tree(popen.pid)}
                    bench.cpu_point(labels, http_target(url, v2_body, rows), groups)
                else:
                    large = [model.rows[i * LARGE_ROWS : (i + 1) * LARGE_ROWS] for i in range(4)]
                    bodies = [json.dumps(v2_body(part.tolist())).encode() for part in large]
                    bench.curve(
                        {**labels, "api": f"v2 json x{LARGE_ROWS}"},
                        Target(url, bodies),
                        rates=[],
                        concurrency=LARGE_CONCURRENCY,
                    )
    bench_mlserver_pool(bench, models, logs, work)


#: MLServer's pool of inference processes measured against its default of none: one per core here.
MLSERVER_POOL_WORKERS = 2


def bench_mlserver_pool(bench: Bench, models: dict[str, BenchModel], logs: Path, work: Path) -> None:
    """Part 4b: MLServer with a pool of inference processes (``parallel_workers``), the one setting
    of the peer not tried above: saturation and the p50/p99 point, batching on and off. The
    report sets it against ``parallel_workers: 0`` (the configuration every other part uses)."""
    needed = len(models) * 2 * (bench.fixed_seconds + bench.repeats * bench.seconds) + 60
    if bench.left() < needed:
        bench.note(f"MLServer with parallel workers skipped (total budget spent: {needed:.0f} s needed)")
        return
    label = f"v2 parallel workers {MLSERVER_POOL_WORKERS}"
    with mlserver(bench, models, logs, work / "mlserver-pool", MLSERVER_POOL_WORKERS) as (base, _):
        for model in models.values():
            rows = _rows(model)
            for suffix, batching in (("batch", "on"), ("nobatch", "off")):
                url = f"{base}/v2/models/{model.name}-{suffix}/infer"
                answer = requests.post(url, json=v2_body(rows[:4]), timeout=30)
                bench.check(
                    f"MLServer, {MLSERVER_POOL_WORKERS} parallel workers (batching {batching})",
                    model,
                    _outputs(answer.json()),
                )
                labels = {"system": "mlserver", "model": model.name, "batching": batching, "api": label}
                bench.curve(labels, http_target(url, v2_body, rows), rates=[bench.fixed_rps])


#: Rounds of the interleaved saturation comparison (each: one closed-loop point of every system).
PAIRED_ROUNDS = 6
#: Rounds of the interleaved fixed-load (p50/p99) comparison: each system runs BENCH_FIXED_SECONDS per round.
FIXED_ROUNDS = 4
#: What takes turns with the platform (v1, worker micro-batching on), and how each is labelled.
PLATFORM_LABEL = "v1 batching on"
PEER_LABELS = {
    "mlserver": "mlserver v2 batching on",
    "mlserver-nobatch": "mlserver v2 batching off",
    "naive": "naive v1",
}


def _round_order(systems: list[str], index: int) -> list[str]:
    """Forward in rounds 0 and 3 (mod 4), reversed in 1 and 2: each system goes first and last as often."""
    return list(systems) if index % 4 in (0, 3) else list(reversed(systems))


def bench_paired(
    bench: Bench, models: dict[str, BenchModel], env: dict[str, str], logs: Path, work: Path
) -> None:
    """Part 5: the platform, MLServer and the naive design, interleaved.

    This machine's speed drifts by tens of percent within minutes (a shared host), and parts 2
    to 4 run minutes apart: their ratios mix the systems' difference with the drift. Here all of
    them run at once (the ones not measured wait idle) and take turns, one point each per round,
    the order alternating (:func:`_round_order`), so that they see the same machine; each round
    gives one ratio per peer and the report keeps all of them with their median.

    Saturation (closed loop): the platform, MLServer (adaptive batching on: its best throughput)
    and the naive design. Fixed load (open loop at BENCH_FIXED_RPS, same arrivals for every system
    of a round): the platform and MLServer with adaptive batching on and off (off has the lower
    latency at a moderate load).
    """
    if not (bench.mlserver_venv / "bin" / "mlserver").exists():
        bench.note("interleaved comparison skipped: MLServer is not installed")
        return
    saturation_needed = 3 * PAIRED_ROUNDS * len(models) * bench.seconds + 120
    fixed_needed = 3 * FIXED_ROUNDS * len(models) * (bench.fixed_seconds + 1)
    if bench.left() < saturation_needed:
        bench.note(f"interleaved comparison skipped (total budget spent: {saturation_needed:.0f} s needed)")
        return
    key = manage(env, "create_api_key", "paired", "--scopes", "predict", "--rate-limit", "0")
    stack = Stack(env=env, logs=logs, prefix="paired")
    try:
        stack.start_api(workers=1, API_ACCESS_LOG="false")
        stack.start_worker(
            concurrency=2,
            WORKER_BATCH_MAX_SIZE=str(BATCH_SIZE),
            WORKER_BATCH_MAX_WAIT_MS=str(BATCH_MS),
            WORKER_DEVICE=bench.worker_device,
        )
        with contextlib.ExitStack() as peers:
            base, _ = peers.enter_context(mlserver(bench, models, logs, work / "mlserver-paired"))
            naive_base = (
                peers.enter_context(naive_stack(env, models, logs)) if "naive" in bench.systems else ""
            )
            for model in models.values():
                rows = _rows(model)
                targets = {
                    "platform": http_target(
                        f"{stack.url}/v1/models/{model.name}:predict", v1_body, rows, key
                    ),
                    "mlserver": http_target(f"{base}/v2/models/{model.name}-batch/infer", v2_body, rows),
                    "mlserver-nobatch": http_target(
                        f"{base}/v2/models/{model.name}-nobatch/infer", v2_body, rows
                    ),
                }
                if naive_base:
                    targets["naive"] = http_target(
                        f"{naive_base}/v1/models/{model.name}:predict", v1_body, rows
                    )
                _interleave(bench, model.name, targets, fixed=bench.left() >= fixed_needed / len(models))
    finally:
        stack.stop()


def _interleave(bench: Bench, model: str, targets: dict[str, Target], fixed: bool) -> None:
    """One model's interleaved rounds: saturation, then (``fixed``: budget left) the fixed load."""
    for target in targets.values():  # warm-up: models loaded, connections open
        closed_loop(target, bench.concurrency, 1.0)

    def saturation(system: str, _round: int) -> dict[str, float]:
        return {"rps": closed_loop(targets[system], bench.concurrency, bench.seconds)[0].achieved_rps}

    def fixed_load(system: str, index: int) -> dict[str, float]:
        # The same arrivals for every system of a round (the seed), other ones each round.
        stats, _ = open_loop(targets[system], bench.fixed_rps, bench.fixed_seconds, seed=index)
        # Requests an open-loop point left queued would load the next system's point.
        time.sleep(1.0)
        return {
            "p50_ms": stats.p50_ms,
            "p99_ms": stats.p99_ms,
            "errors": stats.errors,
            "dropped": stats.dropped,
        }

    systems = [system for system in ("platform", "mlserver", "naive") if system in targets]
    rounds = _paired_rounds(systems, PAIRED_ROUNDS, saturation, f"saturation {model}")
    bench.results["paired"].append(_paired_entry(model, "saturation", rounds))
    if not fixed:
        bench.note(f"interleaved fixed-load comparison of {model} skipped (total budget spent)")
        return
    systems = ["platform", "mlserver", "mlserver-nobatch"]
    rounds = _paired_rounds(systems, FIXED_ROUNDS, fixed_load, f"{bench.fixed_rps:g} req/s {model}")
    bench.results["paired"].append({**_paired_entry(model, "fixed", rounds), "rps": bench.fixed_rps})


def _paired_rounds(
    systems: list[str],
    rounds: int,
    measure: Callable[[str, int], dict[str, float]],
    label: str,
) -> list[dict[str, Any]]:
    """``rounds`` rounds of one point per system: ``measure(system, round)`` gives its figures."""
    out = []
    for index in range(rounds):
        order = _round_order(systems, index)
        measured = {}
        for system in order:
            measured[system] = measure(system, index)
        out.append({"order": order, **measured})
        print(f"[bench] interleaved {label} round {index + 1}: {measured}", flush=True)
    return out


def _paired_entry(model: str, kind: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    systems = [s for s in rounds[0]["order"] if s != "platform"] if rounds else []
    return {
        "model": model,
        "kind": kind,
        "platform": PLATFORM_LABEL,
        "peers": {system: PEER_LABELS[system] for system in systems},
        "rounds": rounds,
    }


# -- machine and versions -------------------------------------------------------------
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """CPU, memory, OS and the versions of everything measured."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    versions = {
        p: _version(p) for p in ("xgboost", "celery", "celery-batches", "kombu", "Flask", "gunicorn", "numpy")
    }
    with contextlib.suppress(Exception), psycopg.connect(ADMIN_DATABASE_URL) as conn:
        versions["PostgreSQL"] = conn.execute("SHOW server_version").fetchone()[0]
    with contextlib.suppress(Exception):
        versions["RabbitMQ"] = rabbitmqctl("version").strip()
    freeze = ROOT / "requirements" / "bench-mlserver.txt"
    for line in freeze.read_text().splitlines() if freeze.exists() else []:
        if line.startswith(("mlserver==", "mlserver-xgboost==")):
            name, version = line.split("==")
            versions[name] = version
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{host.system()} {host.release()}",
        "python": host.python_version(),
        "versions": versions,
    }


def main() -> int:
    """Run every part within the budget; write results.json, the report and the plots."""
    bench = Bench()
    run_id = uuid.uuid4().hex[:8]
    results = bench.results
    results["machine"] = machine()
    results["settings"] = {
        "seconds_per_point": bench.seconds,
        "rates": bench.rates,
        "fixed_rps": bench.fixed_rps,
        "fixed_seconds": bench.fixed_seconds,
        "concurrency": bench.concurrency,
        "repeats": bench.repeats,
        "worker_device": bench.worker_device,
        "max_seconds": bench.max_seconds,
        "job_rows": bench.job_rows,
        "batch_size": BATCH_SIZE,
        "batch_ms": BATCH_MS,
        "mlserver_batch_ms": MLSERVER_BATCH_MS,
    }
    results["load_start"] = os.getloadavg()
    results["started_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"[bench] load average at start: {results['load_start']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        logs = work / "logs"
        logs.mkdir()
        models = train_all(work / "models")
        results["models"] = {
            m.name: {"trees": m.trees, "depth": m.depth, "features": m.features} for m in models.values()
        }
        if "inprocess" in bench.systems:
            bench_inprocess(bench, models)
        try:
            if bench.systems & {"platform", "naive"}:
                with infra(run_id, work) as env:
                    if "platform" in bench.systems:
                        bench_platform(bench, models, env, logs, run_id)
                    if "naive" in bench.systems:
                        bench_naive(bench, models, env, logs)
                    if "mlserver" in bench.systems:
                        bench_mlserver(bench, models, logs, work)
                    if {"platform", "mlserver"} <= bench.systems:
                        bench_paired(bench, models, env, logs, work)
            elif "mlserver" in bench.systems:
                bench_mlserver(bench, models, logs, work)
        except Exception as exc:
            bench.note(f"run stopped early: {type(exc).__name__}: {str(exc)[:1500]}")
    results["load_end"] = os.getloadavg()
    results["elapsed_s"] = time.monotonic() - bench.started
    print(f"[bench] load average at end: {results['load_end']}", flush=True)
    bench.out.mkdir(parents=True, exist_ok=True)
    (bench.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    write_report(results, bench.out)
    plot_python = Path(
        os.environ.get("BENCH_PLOT_PYTHON", str(ROOT / ".tools" / "bench-venv" / "bin" / "python"))
    )
    if plot_python.exists():
        subprocess.run([str(plot_python), str(ROOT / "benchmarks" / "plot.py"), str(bench.out)], check=True)
    else:
        print(f"[bench] no plots: {plot_python} missing (make bench creates it)", flush=True)
    print(f"[bench] wrote {bench.out}/README.md in {results['elapsed_s']:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
