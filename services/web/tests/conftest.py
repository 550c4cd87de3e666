"""Fixtures shared by the web service tests.

Tiny trained boosters, a model store, a command runner, signed-in users with a
role, and rows (model versions, prediction records) made without files.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client

from predictions.models import PredictionRecord
from registry.models import ModelVersion

#: Boosters the tests register: (objective params, number of classes or 0).
BOOSTER_KINDS: dict[str, dict[str, object]] = {
    "binary": {"objective": "binary:logistic"},
    "multiclass": {"objective": "multi:softprob", "num_class": 3},
    "regression": {"objective": "reg:squarederror"},
}
N_FEATURES = 4


def train_booster(kind: str, *, feature_names: list[str] | None = None, seed: int = 0) -> xgboost.Booster:
    """Train a tiny booster of ``kind`` on random data (a few trees, deterministic)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(120, N_FEATURES)).astype(np.float32)
    if kind == "binary":
        labels = (features[:, 0] + features[:, 1] > 0).astype(np.float32)
    elif kind == "multiclass":
        labels = np.digitize(features[:, 0], [-0.5, 0.5]).astype(np.float32)
    else:
        labels = features @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    matrix = xgboost.DMatrix(features, label=labels, feature_names=feature_names)
    params = {**BOOSTER_KINDS[kind], "max_depth": 2, "seed": seed, "nthread": 1}
    return xgboost.train(params, matrix, num_boost_round=3)


@pytest.fixture(scope="session")
def booster_files(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Return ``make(kind, ext, feature_names=None, seed=0)`` giving a saved model file (cached)."""
    directory = tmp_path_factory.mktemp("boosters")
    cache: dict[tuple[str, str, tuple[str, ...] | None, int], Path] = {}

    def make(kind: str, ext: str = ".json", feature_names: list[str] | None = None, seed: int = 0) -> Path:
        key = (kind, ext, tuple(feature_names) if feature_names else None, seed)
        if key not in cache:
            named = "named" if feature_names else "unnamed"
            path = directory / f"{kind}-{named}-{seed}{ext}"
            train_booster(kind, feature_names=feature_names, seed=seed).save_model(str(path))
            cache[key] = path
        return cache[key]

    return make


@pytest.fixture
def model_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MODEL_STORE for this test (the directory is created by the registry)."""
    store = tmp_path / "models"
    monkeypatch.setenv("MODEL_STORE", str(store))
    return store


@pytest.fixture
def run_command() -> Callable[..., list[str]]:
    """Run a management command and return its stdout as a list of lines."""

    def run(name: str, *args: str) -> list[str]:
        out = StringIO()
        call_command(name, *args, stdout=out, stderr=StringIO(), no_color=True)
        return out.getvalue().splitlines()

    return run


@pytest.fixture
def media_root(tmp_path: Path, settings: Any) -> Path:
    """Uploads (datasets, batch files) go to a per-test folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def login() -> Callable[..., User]:
    """Return ``login(client, role, username=None)``: sign ``client`` in as a new user holding only ``role``.

    ``role`` None gives a user without any role; the username defaults to
    ``<role>-user`` and the password is "pw".
    """

    def sign_in(client: Client, role: str | None, username: str | None = None) -> User:
        user = User.objects.create_user(username or f"{role or 'no-role'}-user", password="pw")
        if role:
            user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return user

    return sign_in


@pytest.fixture
def client_as(login: Callable[..., User]) -> Callable[[str | None], Client]:
    """Return ``client_as(role)``: a new test client signed in as a new ``<role>-user``."""

    def make(role: str | None) -> Client:
        client = Client()
        login(client, role)
        return client

    return make


@pytest.fixture
def make_version() -> Callable[..., ModelVersion]:
    """Return ``make(name="churn", version="1", stage="staging", **fields)``: a registry row, no artifact.

    For pages, stage rules and constraints, none of which open the model file;
    ``fields`` override the defaults (two features a and b, binary:logistic).
    """

    def make(name: str = "churn", version: str = "1", stage: str = "staging", **fields: Any) -> ModelVersion:
        defaults: dict[str, Any] = {
            "artifact_path": f"{version}.ubj",
            "sha256": "0" * 64,
            "feature_names": ["a", "b"],
            "n_features": 2,
            "objective": "binary:logistic",
            "n_outputs": 1,
        }
        return ModelVersion.objects.create(name=name, version=version, stage=stage, **{**defaults, **fields})

    return make


@pytest.fixture
def make_record() -> Callable[..., PredictionRecord]:
    """Return ``make(version, request_id, created_at=None, **fields)``: a prediction audit row of ``version``.

    Written as the worker writes it (one row, status ok); ``created_at`` moves
    it back in time, which the database default does not allow on insert.
    """

    def make(
        version: ModelVersion, request_id: str, created_at: Any = None, **fields: Any
    ) -> PredictionRecord:
        defaults: dict[str, Any] = {
            "protocol": "v2",
            "n_rows": 1,
            "inputs_digest": "0" * 64,
            "outputs": [0.5],
            "latency_ms": 10.0,
            "predict_ms": 1.0,
            "batch_size": 1,
            "device": "cpu",
            "status": "ok",
        }
        record = PredictionRecord.objects.create(
            request_id=request_id, model_version=version, **{**defaults, **fields}
        )
        if created_at is not None:
            PredictionRecord.objects.filter(pk=record.pk).update(created_at=created_at)
            record.refresh_from_db()
        return record

    return make
