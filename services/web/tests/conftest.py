"""Fixtures shared by the web service tests: tiny trained boosters, a model store, command runner."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import xgboost
from django.core.management import call_command

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
