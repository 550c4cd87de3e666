"""Real boosters registered in a SQLite registry, for the worker's units."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xgboost
from sqlalchemy import Engine

from inference_common.db import make_engine
from inference_common.schema import metadata, model_versions
from inference_worker.models import ModelCache

# Set before anything configures tracing: unit tests never export spans.
os.environ["OTEL_SDK_DISABLED"] = "true"
os.environ["OTEL_TRACES_EXPORTER"] = "none"


OBJECTIVES = {
    "binary": ({"objective": "binary:logistic"}, 2),
    "multiclass": ({"objective": "multi:softprob", "num_class": 3}, 3),
    "regression": ({"objective": "reg:squarederror"}, None),
}


@dataclass(frozen=True)
class Registered:
    """A booster saved to the store and registered under ``id``."""

    id: int
    booster: xgboost.Booster
    path: Path


@pytest.fixture
def engine(tmp_path) -> Engine:
    """A SQLite registry."""
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite3")
    metadata.create_all(engine)
    return engine


@pytest.fixture
def store(tmp_path) -> Path:
    """The model store directory."""
    path = tmp_path / "models"
    path.mkdir()
    return path


def _train(kind: str, n_features: int = 5, seed: int = 0) -> xgboost.Booster:
    """A small booster of the given kind on random data."""
    params, classes = OBJECTIVES[kind]
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(200, n_features))
    labels = rng.integers(0, classes, size=200) if classes else features[:, 0] * 3 + rng.normal(size=200)
    return xgboost.train({**params, "max_depth": 3, "nthread": 1}, xgboost.DMatrix(features, label=labels), 8)


def _register(
    engine: Engine, store: Path, booster: xgboost.Booster, ext: str = ".json", name: str = "m"
) -> Registered:
    """Save ``booster`` into ``store`` under its sha256 and insert its registry row."""
    temp = store / f"tmp{ext}"
    booster.save_model(temp)
    digest = hashlib.sha256(temp.read_bytes()).hexdigest()
    path = store / f"{digest}{ext}"
    temp.rename(path)
    with engine.begin() as conn:
        result = conn.execute(
            model_versions.insert().values(
                name=name,
                version=digest[:8],
                stage="staging",
                artifact_path=path.name,
                sha256=digest,
                feature_names=[f"f{i}" for i in range(booster.num_features())],
                n_features=booster.num_features(),
                objective="x",
                n_outputs=1,
                created_at=datetime.now(UTC),
            )
        )
    return Registered(int(result.inserted_primary_key[0]), booster, path)


@pytest.fixture
def cache(engine: Engine, store: Path) -> ModelCache:
    """A model cache over the SQLite registry."""
    return ModelCache(engine, store, "cpu", capacity=2)


@pytest.fixture
def train_model():
    """``train_model(kind, n_features=5, seed=0)``: a small real booster."""
    return _train


@pytest.fixture
def register_model(engine: Engine, store: Path):
    """``register_model(booster, ext=".json")``: save it to the store and register it."""

    def register(booster: xgboost.Booster, ext: str = ".json", name: str = "m") -> Registered:
        return _register(engine, store, booster, ext, name)

    return register
