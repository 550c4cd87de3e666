"""Fixtures for the fault-injection suite: real RabbitMQ, PostgreSQL, gunicorn and Celery, then faults.

Like the integration suite, each run creates its own database and vhost, and
every scenario its own queue prefix, so the faults never reach another test.
The counts of every scenario are printed at the end of the run and written as
JSON to ``$FAULTS_REPORT`` (default ``var/faults/results.json``).
"""

from __future__ import annotations

import json
import os
import platform
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer

from support.load import Load, settle
from support.stack import ROOT, Stack, manage, scratch_backends

REPORT = Path(os.environ.get("FAULTS_REPORT", ROOT / "var" / "faults" / "results.json"))
COLUMNS = ("sent", "accepted", "answered", "failed", "refused", "unreachable", "lost")

#: Counts per scenario, filled by the tests, printed and saved at the end of the session.
RESULTS: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class Base:
    """The run's database, vhost, model, key and the environment every service gets."""

    database_url: str
    broker_url: str
    env: dict[str, str]
    logs: Path
    tmp: Path
    booster: xgboost.Booster
    rows: np.ndarray
    key: str


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    """Create and migrate a database and a vhost, register a binary model, create a key; drop after."""
    name = f"faults_{uuid.uuid4().hex[:10]}"
    tmp = tmp_path_factory.mktemp("faults")
    logs = tmp / "logs"
    logs.mkdir()
    with scratch_backends(name, [name]) as (database_url, (broker_url,)):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "MODEL_STORE": str(tmp / "models"),
            "OMP_NUM_THREADS": "1",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            # Keys and models are looked up in the database on every request: the
            # database outage then reaches the request path, as it would after a cache expiry.
            "API_CACHE_TTL_S": "0",
            # Shorter than the clients' timeout: a request no worker answers in time gets 504, not a hang.
            "API_SYNC_TIMEOUT_S": "20",
            "API_JOB_CHUNK_ROWS": "10",
            "API_ACCESS_LOG": "false",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        manage(env, "migrate", "--noinput", "-v", "0")
        data = load_breast_cancer()
        names = [f"f_{i}" for i in range(data.data.shape[1])]
        matrix = xgboost.DMatrix(data.data, label=data.target, feature_names=names)
        booster = xgboost.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1}, matrix, 20)
        path = tmp / "binary.json"
        booster.save_model(path)
        manage(env, "register_model", "--name", "binary", "--file", str(path), "--stage", "production")
        key = manage(env, "create_api_key", "faults", "--scopes", "predict,jobs")
        yield Base(database_url, broker_url, env, logs, tmp, booster, data.data.astype(np.float32), key)


@pytest.fixture
def make_stack(base: Base, request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """``make_stack(**env)``: an api + worker pair with its own queue prefix, stopped after the test."""
    stacks: list[Stack] = []

    def make(**overrides: str) -> Stack:
        prefix = f"faults-{request.node.name[8:28]}-{uuid.uuid4().hex[:6]}".replace("_", "-")
        stack = Stack(env={**base.env, **overrides}, logs=base.logs, prefix=prefix)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture
def load_on(base: Base) -> Callable[..., Load]:
    """``load_on(stack)``: a steady load of v1, v2 and job requests against the stack's api."""

    def make(stack: Stack, threads: int = 3) -> Load:
        return Load(base_url=stack.url, key=base.key, model="binary", rows=base.rows, threads=threads)

    return make


@pytest.fixture
def outcome_of(base: Base) -> Callable[..., dict[str, Any]]:
    """``outcome_of(scenario, load, stack, **notes)``: settle the load, record and return its counts."""

    def settle_and_record(scenario: str, load: Load, stack: Stack, **notes: Any) -> dict[str, Any]:
        counts = settle(
            load.outcomes,
            base_url=stack.url,
            key=base.key,
            booster=base.booster,
            database_url=base.database_url,
        )
        RESULTS[scenario] = {**counts, **notes}
        return counts

    return settle_and_record


def _table() -> str:
    width = max((len(name) for name in RESULTS), default=8)
    header = f"{'scenario':<{width}} " + " ".join(f"{c:>11}" for c in COLUMNS)
    lines = [header, "-" * len(header)]
    for name, counts in RESULTS.items():
        lines.append(f"{name:<{width}} " + " ".join(f"{counts.get(c, 0):>11}" for c in COLUMNS))
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the counts of every scenario and save them as JSON for docs/reliability.md."""
    if not RESULTS:
        return
    terminalreporter.section("fault injection: request outcomes per scenario")
    terminalreporter.write_line(_table())
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores, {platform.platform()})",
        "scenarios": RESULTS,
    }
    REPORT.write_text(json.dumps(report, indent=2, default=str) + "\n")
    terminalreporter.write_line(f"saved to {REPORT}")
