"""MLServer (its XGBoost runtime, v2 REST) as the peer: a model repository and the server process.

Each model is served twice: ``<name>-batch`` with adaptive batching (``max_batch_size``,
``max_batch_time`` as the platform's worker batches) and ``<name>-nobatch`` without.
``OMP_NUM_THREADS=1`` like every other system in the run. The benchmark's MLServer runs its
inference in the server process (``parallel_workers: 0``); it also measures a pool of inference
processes (``parallel_workers`` > 0), slower here (the report's "MLServer's configuration").
That pool needs uvloop 0.19 (pinned in requirements/bench-mlserver.txt): with 0.23 its processes
died at start ("There is no current event loop") and were restarted in a loop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from benchmarks.models import BenchModel


def write_repository(
    folder: Path, models: dict[str, BenchModel], batch_size: int, batch_ms: float
) -> list[str]:
    """Write settings.json and one model folder per (model, batching) pair; return the served names."""
    names = []
    for model in models.values():
        for suffix, batching in (("batch", True), ("nobatch", False)):
            name = f"{model.name}-{suffix}"
            target = folder / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model.path, target / "model.ubj")
            settings = {"name": name, "implementation": "mlserver_xgboost.XGBoostModel"}
            if batching:
                settings.update({"max_batch_size": batch_size, "max_batch_time": batch_ms / 1000})
            (target / "model-settings.json").write_text(json.dumps(settings))
            names.append(name)
    return names


def server_settings(
    folder: Path, http_port: int, grpc_port: int, metrics_port: int, parallel_workers: int = 0
) -> None:
    """The server's settings.json: loopback only, ``parallel_workers`` inference processes, quiet logs.

    The inference processes' metric files go under ``folder``: MLServer's default is ``.metrics``
    in its working directory, which was the repository (files left there, one run committed them).
    """
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "metrics_dir": str(folder / ".metrics"),
        "parallel_workers": parallel_workers,
        "debug": False,
        "load_models_at_startup": True,
    }
    (folder / "settings.json").write_text(json.dumps(settings))


def start(venv: Path, folder: Path, log: Path, parallel_workers: int = 0) -> subprocess.Popen:
    """Start ``mlserver start <folder>`` in its own session, logging to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLSERVER_PARALLEL_WORKERS": str(parallel_workers)}
    handle = log.open("ab")
    return subprocess.Popen(
        [str(venv / "bin" / "mlserver"), "start", str(folder)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
