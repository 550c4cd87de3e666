"""Where a single-row sync request's time goes: ``python -m benchmarks.sync_probe`` (issue #8).

Starts the platform the way ``make bench`` does (benchmarks/run.py: its own database and vhost,
gunicorn api with one process (the default) and no access log, a Celery worker with concurrency 2 and the
default micro-batching, ``OMP_NUM_THREADS=1``), then runs closed-loop points of single-row
requests (the benchmark's saturation point) and prints, per point: requests/s, p50/p99 and the
CPU each group of processes spent per answered request (api, worker, RabbitMQ and PostgreSQL,
the load generator), read from /proc before and after, as the benchmark's CPU table does.

Settings (env): PROBE_MODELS (small), PROBE_API v1 or v2 (v1), PROBE_SECONDS per point (4),
PROBE_CONCURRENCY closed-loop clients (16, the benchmark's), PROBE_REPEAT points (3),
PROBE_API_WORKERS gunicorn processes of the api and PROBE_WORKER_CONCURRENCY the worker's pool
processes (1 and 2, the benchmark's), PROBE_WORKER_POOL Celery's pool (prefork, the default; ``solo``
or ``threads`` to try others) and PROBE_WORKERS how many workers (1),
PROBE_PROFILE a folder: record py-spy (``--gil``; ``PROBE_PROFILE_GIL=0`` samples every busy
thread) on the api and the worker during one more point. Other settings of the services (say
``API_THREADS`` or ``WORKER_BATCH_MAX_SIZE``) pass through from the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests

from benchmarks.jobs_probe import profiling
from benchmarks.load import closed_loop
from benchmarks.probe_stack import probe_stack
from benchmarks.profile import CpuMeter, process_tree, processes_named
from benchmarks.run import http_target, v1_body, v2_body


def _settings() -> dict[str, Any]:
    env = os.environ
    return {
        "names": env.get("PROBE_MODELS", "small").split(","),
        "api": env.get("PROBE_API", "v1"),
        "seconds": float(env.get("PROBE_SECONDS", "4")),
        "concurrency": int(env.get("PROBE_CONCURRENCY", "16")),
        "repeat": int(env.get("PROBE_REPEAT", "3")),
        "api_workers": int(env.get("PROBE_API_WORKERS", "1")),
        "worker_concurrency": int(env.get("PROBE_WORKER_CONCURRENCY", "2")),
        "worker_pool": env.get("PROBE_WORKER_POOL", ""),
        "workers": int(env.get("PROBE_WORKERS", "1")),
        "profile": Path(env["PROBE_PROFILE"]).resolve() if env.get("PROBE_PROFILE") else None,
    }


def _line(name: str, stats: Any, cpu: dict[str, dict[str, float]], error: str) -> str:
    per_request = {group: used["ms_per_request"] for group, used in cpu.items()}
    groups = ", ".join(f"{group} {ms:.2f}" for group, ms in per_request.items())
    return (
        f"{name:5} {stats.achieved_rps:>8,.0f}/s p50 {stats.p50_ms:5.1f} ms p99 {stats.p99_ms:5.1f} ms"
        f" | CPU ms/request: {groups}, total {sum(per_request.values()):.2f}"
        + (f" ({error})" if error else "")
    )


def main() -> int:
    """Start the stack, run the closed-loop points, print one line each."""
    settings = _settings()
    with probe_stack("sync-probe", settings["names"], "predict") as probe:
        stack, key = probe.stack, probe.key
        workers = [
            stack.start_worker(concurrency=settings["worker_concurrency"], pool=settings["worker_pool"])
            for _ in range(settings["workers"])
        ]
        api = stack.start_api(
            workers=settings["api_workers"], API_ACCESS_LOG=os.environ.get("API_ACCESS_LOG", "false")
        )
        groups = {
            "api": process_tree(api.popen.pid),
            "worker": [pid for worker in workers for pid in process_tree(worker.popen.pid)],
            "RabbitMQ and PostgreSQL": processes_named("beam.smp", "postgres"),
            "load generator": [os.getpid()],
        }
        for name, model in probe.models.items():
            rows = model.rows[:512].tolist()
            url = (
                f"{stack.url}/v1/models/{name}:predict"
                if settings["api"] == "v1"
                else f"{stack.url}/v2/models/{name}/infer"
            )
            body = v1_body if settings["api"] == "v1" else v2_body
            target = http_target(url, body, rows, key)
            answer = requests.post(
                url, json=body(rows[:1]), headers={"Authorization": f"Bearer {key}"}, timeout=30
            )
            answer.raise_for_status()
            closed_loop(target, settings["concurrency"], 1.0)  # warm-up
            for _ in range(settings["repeat"]):
                meter = CpuMeter(groups)
                meter.start()
                stats, error = closed_loop(target, settings["concurrency"], settings["seconds"])
                cpu = meter.stop(stats.ok, settings["seconds"])
                print(_line(name, stats, cpu, error), flush=True)
            if settings["profile"] is not None:
                with profiling(settings["profile"] / name, stack):
                    closed_loop(target, settings["concurrency"], settings["seconds"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
