"""``make bench``: one bounded run comparing the platform with the in-process limit and two peers.

Order of work (each part is skipped, with a note in the report, once the total budget is spent):
1. the in-process limit: the same booster's ``inplace_predict`` on the same rows, batch 1..65536;
2. this platform (gunicorn api + Celery worker on RabbitMQ/PostgreSQL, its own database, vhost and
   queue prefix): single-row v1 and v2 requests and async jobs, worker batching on and off;
3. the naive Celery design (benchmarks/naive_celery.py), on its own vhost;
4. MLServer with its XGBoost runtime (benchmarks/mlserver_peer.py), adaptive batching on and off.

Everything listens on 127.0.0.1. Settings (env): BENCH_SECONDS per load point (4), BENCH_RATES
offered loads in requests/s (25,50,100,200), BENCH_FIXED_RPS the load of the p50/p99 comparison
(50), BENCH_CONCURRENCY closed-loop clients for the saturation point (16), BENCH_MAX_SECONDS the
total cap (540), BENCH_JOB_ROWS rows of an async job (10000), BENCH_SYSTEMS which parts run
(inprocess,platform,naive,mlserver), BENCH_OUT the output folder (docs/benchmarks).
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
import psycopg
import requests

from benchmarks import inprocess, mlserver_peer
from benchmarks.load import Target, closed_loop, open_loop
from benchmarks.models import BenchModel, train_all
from benchmarks.report import write_report

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

#: Rows cycled through by single-row clients (as Python lists: no numpy work in the load threads).
REQUEST_ROWS = 512
#: The worker's default micro-batch (WORKER_BATCH_MAX_SIZE, WORKER_BATCH_MAX_WAIT_MS), used for MLServer too.
BATCH_SIZE, BATCH_MS = 64, 2.0


class Bench:
    """Settings, the time budget and the measured results of one run."""

    def __init__(self) -> None:
        env = os.environ
        self.seconds = float(env.get("BENCH_SECONDS", "4"))
        self.rates = [float(r) for r in env.get("BENCH_RATES", "25,50,100,200").split(",")]
        self.fixed_rps = float(env.get("BENCH_FIXED_RPS", "50"))
        self.concurrency = int(env.get("BENCH_CONCURRENCY", "16"))
        self.max_seconds = float(env.get("BENCH_MAX_SECONDS", "540"))
        self.job_rows = int(env.get("BENCH_JOB_ROWS", "10000"))
        self.systems = set(env.get("BENCH_SYSTEMS", "inprocess,platform,naive,mlserver").split(","))
        self.out = Path(env.get("BENCH_OUT", str(ROOT / "docs" / "benchmarks")))
        self.mlserver_venv = Path(
            env.get("BENCH_MLSERVER_VENV", str(ROOT / ".tools" / "bench-mlserver-venv"))
        )
        self.started = time.monotonic()
        self.results: dict[str, Any] = {"inprocess": {}, "points": [], "jobs": [], "checks": [], "notes": []}

    def left(self) -> float:
        """Seconds left of the total budget."""
        return self.max_seconds - (time.monotonic() - self.started)

    def note(self, text: str) -> None:
        """Record a note for the report (and show progress)."""
        print(f"[bench] note: {text}", flush=True)
        self.results["notes"].append(text)

    def curve(self, labels: dict[str, str], target: Target) -> None:
        """Open-loop points at every offered rate, then one closed-loop saturation point."""
        for rate in self.rates:
            self._point(
                labels, "open", lambda rate=rate: open_loop(target, rate, self.seconds, seed=int(rate))
            )
        self._point(labels, "closed", lambda: closed_loop(target, self.concurrency, self.seconds))

    def _point(self, labels: dict[str, str], mode: str, measure: Callable[[], tuple[Any, str]]) -> None:
        if self.left() < self.seconds + 20:
            self.note(f"skipped {mode} point of {labels} (total budget spent)")
            return
        stats, error = measure()
        point = {**labels, "mode": mode, **stats.as_dict(), "last_error": error}
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


def http_target(
    url: str, body: Callable[[list[list[float]]], dict], rows: list[list[float]], key: str = ""
) -> Target:
    """Single-row requests to ``url``, one pre-encoded body per row, cycled through."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Target(url, [json.dumps(body([row])).encode() for row in rows], headers=headers)


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


def run_job(url: str, key: str, model: BenchModel, rows: int) -> dict[str, Any]:
    """Submit one async job of ``rows`` rows; poll until it ends; rows/s from submit to done."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    body = json.dumps({"instances": model.rows[:rows].tolist()})
    start = time.perf_counter()
    response = session.post(
        f"{url}/v1/models/{model.name}/jobs",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    if response.status_code != 202:
        return {
            "model": model.name,
            "rows": rows,
            "error": f"HTTP {response.status_code}: {response.text[:200]}",
        }
    accepted = time.perf_counter() - start
    job_id = response.json()["id"]
    deadline = start + 180
    while time.perf_counter() < deadline:
        view = session.get(f"{url}/v1/jobs/{job_id}", timeout=60).json()
        if view["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    result = {
        "model": model.name,
        "rows": rows,
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
        stack.start_api(workers=2)
        for batching, size in (("on", BATCH_SIZE), ("off", 1)):
            if bench.left() < 60:
                bench.note(f"skipped platform with batching {batching} (total budget spent)")
                continue
            worker = stack.start_worker(
                concurrency=2, WORKER_BATCH_MAX_SIZE=str(size), WORKER_BATCH_MAX_WAIT_MS=str(BATCH_MS)
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
                if bench.left() > 60:
                    job = run_job(stack.url, key, model, bench.job_rows)
                    bench.results["jobs"].append({**job, "batching": batching})
                    print(f"[bench] job {model.name} batching {batching}: {job}", flush=True)
            worker.stop()
    finally:
        stack.stop()


def bench_naive(bench: Bench, models: dict[str, BenchModel], env: dict[str, str], logs: Path) -> None:
    """Part 3: the naive Celery design, one task per request, default settings."""
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
            rows = _rows(model)
            url = f"{base}/v1/models/{model.name}:predict"
            wait_for(
                lambda url=url, rows=rows: requests.post(url, json=v1_body(rows[:1]), timeout=5).ok,
                60,
                worker,
            )
            bench.check(
                "naive Celery", model, _outputs(requests.post(url, json=v1_body(rows[:4]), timeout=30).json())
            )
            bench.curve(
                {"system": "naive", "model": model.name, "batching": "off", "api": "v1"},
                http_target(url, v1_body, rows),
            )
    finally:
        web.stop()
        worker.stop()


def bench_mlserver(bench: Bench, models: dict[str, BenchModel], logs: Path, work: Path) -> None:
    """Part 4: MLServer's XGBoost runtime over v2 REST, adaptive batching on and off."""
    if not (bench.mlserver_venv / "bin" / "mlserver").exists():
        bench.note(f"MLServer skipped: no {bench.mlserver_venv}/bin/mlserver (make bench installs it)")
        return
    repo = work / "mlserver"
    repo.mkdir()
    mlserver_peer.write_repository(repo, models, BATCH_SIZE, BATCH_MS)
    port = free_port()
    mlserver_peer.server_settings(repo, port, free_port(), free_port())
    popen = mlserver_peer.start(bench.mlserver_venv, repo, logs / "mlserver.log")
    server = Process("mlserver", popen, logs / "mlserver.log")
    base = f"http://127.0.0.1:{port}"
    try:
        names = [f"{m}-{s}" for m in models for s in ("batch", "nobatch")]
        wait_for(
            lambda: all(requests.get(f"{base}/v2/models/{n}/ready", timeout=5).ok for n in names), 120, server
        )
        for model in models.values():
            rows = _rows(model)
            for suffix, batching in (("batch", "on"), ("nobatch", "off")):
                url = f"{base}/v2/models/{model.name}-{suffix}/infer"
                answer = requests.post(url, json=v2_body(rows[:4]), timeout=30)
                bench.check(f"MLServer (batching {batching})", model, _outputs(answer.json()))
                labels = {"system": "mlserver", "model": model.name, "batching": batching, "api": "v2"}
                bench.curve(labels, http_target(url, v2_body, rows))
    finally:
        server.stop()


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
        "concurrency": bench.concurrency,
        "max_seconds": bench.max_seconds,
        "job_rows": bench.job_rows,
        "batch_size": BATCH_SIZE,
        "batch_ms": BATCH_MS,
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
