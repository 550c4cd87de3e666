"""The platform started for a probe (benchmarks/jobs_probe.py, benchmarks/sync_probe.py).

As ``make bench`` runs it (benchmarks/run.py): the bench models trained and registered in
production in a scratch database and vhost of the probe's own, and one API key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from benchmarks.models import BenchModel, train_all
from benchmarks.run import Stack, infra, manage


@dataclasses.dataclass(frozen=True)
class ProbeStack:
    """What a probe measures against: ``stack`` has no process running until the probe starts them."""

    models: dict[str, BenchModel]
    env: dict[str, str]
    key: str
    stack: Stack


@contextlib.contextmanager
def probe_stack(name: str, models: list[str], scopes: str, **env: str) -> Iterator[ProbeStack]:
    """Train and register ``models`` (bench model names), create a key of ``scopes``; stop everything after.

    ``env`` is added to the services' environment (after the scratch backends').
    """
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        work = Path(tmp)
        logs = work / "logs"
        logs.mkdir()
        trained = train_all(work / "models")
        chosen = {model: trained[model] for model in models}
        with infra(run_id, work) as service_env:
            service_env.update(env)
            for model in chosen.values():
                manage(
                    service_env,
                    *("register_model", "--name", model.name, "--file", str(model.path)),
                    *("--stage", "production"),
                )
            key = manage(service_env, "create_api_key", name, "--scopes", scopes, "--rate-limit", "0")
            stack = Stack(env=service_env, logs=logs, prefix=f"{name}-{run_id}")
            try:
                yield ProbeStack(chosen, service_env, key, stack)
            finally:
                stack.stop()
