"""Load registered XGBoost models once per version and keep them cached."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost
from opentelemetry import trace
from sqlalchemy import Engine, select

from inference_common.artifacts import file_sha256
from inference_common.schema import model_versions
from inference_common.telemetry import ATTR_DEVICE, ATTR_MODEL_NAME, ATTR_MODEL_VERSION

from . import metrics

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class ModelLoadError(RuntimeError):
    """The artifact of a registered version is missing, corrupt or not a booster."""


class UnknownModelVersionError(ModelLoadError):
    """No version with this id is registered: a poison message, retrying cannot help."""


@dataclass(frozen=True)
class LoadedModel:
    """A booster ready to predict, with the registry facts it was loaded from."""

    model_version_id: int
    name: str
    version: str
    n_features: int
    booster: xgboost.Booster
    device: str
    load_seconds: float

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """The booster's own prediction for ``rows`` (float32, shape (n, n_features)).

        ``inplace_predict`` gives the same numbers as ``Booster.predict`` on a
        DMatrix of the same float32 rows, without building the DMatrix.
        """
        return self.booster.inplace_predict(rows, validate_features=False)


class ModelCache:
    """An LRU of loaded boosters keyed by model version id.

    Each booster is pinned to one OpenMP thread: throughput comes from more
    worker processes, and on a busy node extra threads only contend.
    """

    def __init__(self, engine: Engine, store: Path, device: str, capacity: int = 8) -> None:
        self._engine = engine
        self._store = store
        self._device = device
        self._capacity = capacity
        self._models: OrderedDict[int, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_version_id: int) -> LoadedModel:
        """Return the cached model, loading it on first use."""
        with self._lock:
            model = self._models.get(model_version_id)
            if model is not None:
                self._models.move_to_end(model_version_id)
                return model
        model = self._load(model_version_id)
        with self._lock:
            self._models[model_version_id] = model
            while len(self._models) > self._capacity:
                evicted, _ = self._models.popitem(last=False)
                logger.info("evicted model version %s from the cache", evicted)
        return model

    def __len__(self) -> int:
        return len(self._models)

    @property
    def engine(self) -> Engine:
        """The registry database this cache reads model versions from."""
        return self._engine

    @property
    def device(self) -> str:
        """The device this cache loads boosters onto."""
        return self._device

    def _load(self, model_version_id: int) -> LoadedModel:
        with tracer.start_as_current_span("model.load") as span:
            started = time.perf_counter()
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(
                        model_versions.c.name,
                        model_versions.c.version,
                        model_versions.c.artifact_path,
                        model_versions.c.sha256,
                        model_versions.c.n_features,
                    ).where(model_versions.c.id == model_version_id)
                ).first()
            if row is None:
                # An unknown id has no name to label with; one shared series keeps cardinality bounded.
                metrics.MODEL_LOAD_FAILURES.labels("unknown", "unknown").inc()
                raise UnknownModelVersionError(f"model version id {model_version_id} is not registered")
            span.set_attribute(ATTR_MODEL_NAME, row.name)
            span.set_attribute(ATTR_MODEL_VERSION, row.version)
            span.set_attribute(ATTR_DEVICE, self._device)
            try:
                booster = self._read_booster(row)
            except ModelLoadError:
                metrics.MODEL_LOAD_FAILURES.labels(row.name, row.version).inc()
                raise
            elapsed = time.perf_counter() - started
            metrics.MODEL_LOAD_DURATION.labels(row.name, row.version, self._device).observe(elapsed)
            logger.info(
                "loaded model %s v%s on %s in %.1f ms", row.name, row.version, self._device, elapsed * 1000
            )
            return LoadedModel(
                model_version_id=model_version_id,
                name=row.name,
                version=row.version,
                n_features=row.n_features,
                booster=booster,
                device=self._device,
                load_seconds=elapsed,
            )

    def _read_booster(self, row: Any) -> xgboost.Booster:
        """Check the artifact against the registry and parse it; ModelLoadError if unusable."""
        path = self._store / row.artifact_path
        if not path.is_file():
            raise ModelLoadError(f"artifact of {row.name} v{row.version} is missing: {row.artifact_path}")
        if file_sha256(path) != row.sha256:
            raise ModelLoadError(f"artifact of {row.name} v{row.version} does not match its sha256")
        try:
            booster = xgboost.Booster(model_file=str(path))
        except xgboost.core.XGBoostError as exc:
            raise ModelLoadError(f"artifact of {row.name} v{row.version} is not a booster: {exc}") from exc
        booster.set_param({"nthread": 1, "device": self._device})
        return booster
