"""The naive baseline: Flask + Celery with one task per request and Celery's default settings.

This is the design of most tutorials, kept deliberately plain: the web process publishes one task
per HTTP request and blocks on ``.get()`` from the ``rpc://`` result backend; the worker loads the
model once per process and predicts the rows of that one request. No batching, no audit, no auth.

Run by ``benchmarks/run.py`` as ``celery -A benchmarks.naive_celery worker`` and
``gunicorn benchmarks.naive_celery:web``. Reading env at import time is part of the naive design
(and lets both commands find the same broker and model folder).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import xgboost
from celery import Celery
from flask import Flask, request

celery = Celery("naive", broker=os.environ.get("NAIVE_BROKER_URL", "amqp://"), backend="rpc://")
web = Flask(__name__)


@functools.cache
def _booster(name: str) -> xgboost.Booster:
    booster = xgboost.Booster(model_file=str(Path(os.environ["NAIVE_MODEL_DIR"]) / f"{name}.ubj"))
    booster.set_param({"nthread": 1})
    return booster


@celery.task
def predict(name: str, instances: list[list[float]]) -> list[float]:
    """Predict the rows of one request with the named model."""
    return _booster(name).inplace_predict(np.asarray(instances, dtype=np.float32)).tolist()


@web.post("/v1/models/<name>:predict")
def predict_route(name: str) -> dict[str, Any]:
    """KServe v1 shape, so the same client drives the platform and this baseline."""
    instances = request.get_json()["instances"]
    return {"predictions": predict.delay(name, instances).get(timeout=30)}
