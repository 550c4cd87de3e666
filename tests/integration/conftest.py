"""Fixtures for the integration suite: real RabbitMQ, PostgreSQL, gunicorn and Celery.

Each run creates its own PostgreSQL database and RabbitMQ vhost (and every
stack its own queue prefix), so parallel runs on one machine never meet.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
import requests
import xgboost
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from support.otlp import OtlpReceiver
from support.stack import Stack, manage, scratch_backends


@dataclass(frozen=True)
class Infra:
    """The per-run database, vhost, model store and base environment."""

    database_url: str
    broker_url: str
    model_store: Path
    env: dict[str, str]
    logs: Path


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this test run."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    """An OTLP receiver every service of the run exports its spans to."""
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def infra(run_id: str, tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver) -> Iterator[Infra]:
    """Create a database (migrated by Django) and a vhost for this run; drop them after."""
    name = f"itest_{run_id}"
    base = tmp_path_factory.mktemp("infra")
    model_store = base / "models"
    logs = base / "logs"
    logs.mkdir()
    with scratch_backends(name, [name]) as (database_url, (broker_url,)):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "MODEL_STORE": str(model_store),
            "OMP_NUM_THREADS": "1",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "API_CACHE_TTL_S": "0",
            "API_SYNC_TIMEOUT_S": "60",
            "API_JOB_CHUNK_ROWS": "100",
            # Review policies written by a test apply to the very next request.
            "WORKER_POLICY_CACHE_TTL_S": "0",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        manage(env, "migrate", "--noinput", "-v", "0")
        yield Infra(database_url, broker_url, model_store, env, logs)


@dataclass(frozen=True)
class TrainedModel:
    """A registered model, its booster and rows to predict."""

    name: str
    version: str
    booster: xgboost.Booster
    rows: np.ndarray

    def expected(self, rows: np.ndarray) -> np.ndarray:
        """The model's own prediction (what the platform must return)."""
        return self.booster.predict(xgboost.DMatrix(rows, feature_names=self.booster.feature_names))


def _train(objective: str, data, rounds: int, extra: dict | None = None) -> xgboost.Booster:
    names = [f"f_{i}" for i in range(data.data.shape[1])]
    matrix = xgboost.DMatrix(data.data, label=data.target, feature_names=names)
    params = {"objective": objective, "max_depth": 4, "nthread": 1, **(extra or {})}
    return xgboost.train(params, matrix, rounds)


@pytest.fixture(scope="session")
def models(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainedModel]:
    """Binary, multi-class and regression models registered through the real command."""
    folder = tmp_path_factory.mktemp("artifacts")
    specs = {
        "binary": ("binary:logistic", load_breast_cancer(), ".json", None),
        "multiclass": ("multi:softprob", load_iris(), ".ubj", {"num_class": 3}),
        "regression": ("reg:squarederror", load_diabetes(), ".json", None),
    }
    result = {}
    for name, (objective, data, ext, extra) in specs.items():
        booster = _train(objective, data, 20, extra)
        path = folder / f"{name}{ext}"
        booster.save_model(path)
        version = manage(
            infra.env, "register_model", "--name", name, "--file", str(path), "--stage", "production"
        )
        result[name] = TrainedModel(name, version, booster, data.data.astype(np.float32))
    # A second, staging version of the binary model (fewer trees): reachable only by version.
    staging = _train("binary:logistic", load_breast_cancer(), 5)
    path = folder / "binary-v2.ubj"
    staging.save_model(path)
    version = manage(infra.env, "register_model", "--name", "binary", "--file", str(path))
    result["binary-staging"] = TrainedModel(
        "binary", version, staging, load_breast_cancer().data.astype(np.float32)
    )
    return result


@pytest.fixture(scope="session")
def register_version(infra: Infra, tmp_path_factory: pytest.TempPathFactory):
    """``register_version(name, booster, rows, stage=None)``: register through the real command.

    ``stage`` may be any stage: the command takes production or staging, so
    canary and shadow (with ``traffic``) are then set in the database, as the
    web tier's promote action does.
    """
    folder = tmp_path_factory.mktemp("versions")

    def register(
        name: str, booster: xgboost.Booster, rows: np.ndarray, stage: str | None = None, traffic: int = 0
    ) -> TrainedModel:
        path = folder / f"{uuid.uuid4().hex}.ubj"
        booster.save_model(path)
        args = ["--stage", "production"] if stage == "production" else []
        version = manage(infra.env, "register_model", "--name", name, "--file", str(path), *args)
        if stage not in (None, "production", "staging"):
            _set_stage(infra.database_url, name, version, stage, traffic)
        return TrainedModel(name, version, booster, rows)

    return register


def _set_stage(database_url: str, name: str, version: str, stage: str, traffic: int = 0) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE model_versions SET stage = %s, traffic_percent = %s WHERE name = %s AND version = %s",
            (stage, traffic, name, version),
        )


@pytest.fixture(scope="session")
def set_stage(infra: Infra):
    """``set_stage(name, version, stage, traffic=0)``: move a version, straight in the database."""

    def move(name: str, version: str, stage: str, traffic: int = 0) -> None:
        _set_stage(infra.database_url, name, version, stage, traffic)

    return move


@pytest.fixture(scope="session")
def train_binary():
    """``train_binary(rounds, depth=4)``: a breast-cancer classifier.

    Different rounds or depths give different predictions on every row, so a
    test can tell from an answer which version served it.
    """

    def train(rounds: int, depth: int = 4) -> xgboost.Booster:
        return _train("binary:logistic", load_breast_cancer(), rounds, {"max_depth": depth})

    return train


@dataclass(frozen=True)
class Keys:
    """Raw API keys of different kinds."""

    full: str
    predict_only: str
    revoked: str
    limited: str
    other: str


@pytest.fixture(scope="session")
def keys(infra: Infra) -> Keys:
    """Keys created and revoked through the real management commands."""
    full = manage(infra.env, "create_api_key", "full", "--scopes", "predict,jobs")
    predict_only = manage(infra.env, "create_api_key", "predict-only", "--scopes", "predict")
    revoked = manage(infra.env, "create_api_key", "revoked")
    manage(infra.env, "revoke_api_key", revoked.split("_")[1])
    limited = manage(infra.env, "create_api_key", "limited", "--rate-limit", "3")
    other = manage(infra.env, "create_api_key", "other")
    return Keys(full, predict_only, revoked, limited, other)


@pytest.fixture(scope="session")
def stack(infra: Infra, models: dict[str, TrainedModel], run_id: str) -> Iterator[Stack]:
    """The shared api + worker used by most tests."""
    # One api process: the in-memory rate limiter then counts exactly.
    stack = Stack(env=infra.env, logs=infra.logs, prefix=f"it-{run_id}")
    try:
        stack.start_worker(concurrency=2)
        stack.start_api(workers=1)
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def api(stack: Stack, keys: Keys) -> requests.Session:
    """A session against the shared api, authenticated with the full key."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {keys.full}"
    session.base = stack.url  # type: ignore[attr-defined]
    return session


@pytest.fixture(scope="session")
def db(infra: Infra) -> Iterator[psycopg.Connection]:
    """A direct connection to the run's database, to check what services wrote."""
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        yield conn
