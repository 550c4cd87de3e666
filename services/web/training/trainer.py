"""Training a new model version from a CSV file (and review feedback): the work of one run.

Kept apart from the Celery task so the whole path (data, training, metrics,
registration) can be run and tested in-process. Every failure becomes a
``TrainingError`` with a message for the run page: a run never ends stuck.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import xgboost
from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from audit.models import Source
from inference_common.drift import SOURCE_TRAINING, build_baseline
from inference_common.settings import model_store
from jobs.csvdata import ID_COLUMN, CsvError, read_header, read_numeric
from registry.models import Stage
from registry.services import RegistryError, register_model
from training.models import RunStatus, TrainingRun

logger = logging.getLogger(__name__)

OBJECTIVES = ("binary:logistic", "multi:softprob", "reg:squarederror")
#: The split is reproducible: the same file and parameters give the same model.
SPLIT_SEED = 20240611
#: Characters XGBoost refuses in feature names.
_BAD_FEATURE_NAME = re.compile(r"[\[\]<,]")
#: Least time between two progress writes: enough for a live bar, few database writes.
PROGRESS_INTERVAL_S = 0.5
#: Training rows the drift baseline is built from (a fixed-seed sample of larger sets):
#: quantile bins are stable long before this, and predicting them stays quick.
BASELINE_MAX_ROWS = 100_000


class TrainingError(ValueError):
    """A run that cannot be completed; the message is shown on the run page."""


@dataclass(frozen=True)
class Dataset:
    """Features and labels, with the feature names of the columns."""

    features: np.ndarray
    labels: np.ndarray
    feature_names: list[str]


def feature_columns(header: list[str], label_column: str) -> list[str]:
    """The columns used as features: every column but the label and an ``id`` column."""
    if label_column not in header:
        raise TrainingError(
            f"the label column {label_column!r} is not in the file; it has {', '.join(header[:20])}"
        )
    names = [name for name in header if name not in (label_column, ID_COLUMN)]
    if not names:
        raise TrainingError("the file has no feature columns besides the label")
    bad = [name for name in names if _BAD_FEATURE_NAME.search(name)]
    if bad:
        raise TrainingError(f"column name {bad[0]!r}: feature names may not contain '[', ']', '<' or ','")
    return names


def check_labels(objective: str, labels: np.ndarray) -> int:
    """Refuse labels the objective cannot learn from; returns the class count (0 for regression)."""
    if objective not in OBJECTIVES:
        raise TrainingError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if not np.all(np.isfinite(labels)):
        raise TrainingError("every label must be a finite number")
    if objective == "reg:squarederror":
        return 0
    if not np.all(labels == np.round(labels)) or labels.min() < 0:
        raise TrainingError(f"{objective} needs class labels 0, 1, 2, ...; the label column has other values")
    if objective == "binary:logistic":
        if labels.max() > 1:
            raise TrainingError("binary:logistic needs labels 0 and 1; use multi:softprob for more classes")
        return 2
    n_classes = int(labels.max()) + 1
    if n_classes < 2:
        raise TrainingError("multi:softprob needs at least two classes (labels 0 and 1)")
    return n_classes


def read_dataset(binary: IO[bytes], label_column: str) -> Dataset:
    """Features (empty cells are XGBoost missing values) and labels (required) of a CSV file."""
    try:
        header = read_header(binary)
        names = feature_columns(header, label_column)
        table = read_numeric(binary, [*names, label_column], allow_missing=True)
    except CsvError as exc:
        raise TrainingError(str(exc)) from None
    labels = table.matrix[:, -1]
    missing = np.flatnonzero(~np.isfinite(labels))
    if missing.size:
        raise TrainingError(f"data row {int(missing[0]) + 1}: the label {label_column!r} is empty")
    return Dataset(features=table.matrix[:, :-1], labels=labels, feature_names=names)


def add_feedback(data: Dataset, model_name: str) -> tuple[Dataset, int]:
    """``data`` plus the decided review items of ``model_name`` (returns the rows added).

    Feedback columns are matched to the CSV's by feature name, so a reviewed
    row of an older version with a different column order still lines up.
    """
    from reviews.services import feedback_rows

    features, labels, names = feedback_rows(model_name)
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if labels.size == 0:
        return data, 0
    missing = [name for name in data.feature_names if name not in names]
    if missing:
        raise TrainingError(
            f"review feedback for {model_name!r} lacks feature(s) {', '.join(missing[:5])} of the CSV file; "
            "train without feedback or use the model's feature names as columns"
        )
    order = [list(names).index(name) for name in data.feature_names]
    extra = features.reshape(labels.size, -1)[:, order]
    merged = Dataset(
        features=np.vstack([data.features, extra]),
        labels=np.concatenate([data.labels, labels]),
        feature_names=data.feature_names,
    )
    return merged, int(labels.size)


def split(data: Dataset, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and validation sets (fixed seed, at least one row in each)."""
    n_rows = data.labels.size
    if n_rows < 2:
        raise TrainingError("at least two data rows are needed (one to train, one to validate)")
    order = np.random.default_rng(SPLIT_SEED).permutation(n_rows)
    n_validation = min(max(1, round(n_rows * validation_fraction)), n_rows - 1)
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


def metrics_for(objective: str, labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Validation metrics: auc/logloss/accuracy, mlogloss/accuracy, or rmse/mae/r2."""
    eps = 1e-15
    result: dict[str, float] = {}
    if objective == "binary:logistic":
        p = np.clip(predictions, eps, 1 - eps)
        result["logloss"] = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
        result["accuracy"] = float(np.mean((predictions > 0.5) == (labels == 1)))
        auc = _auc(labels, predictions)
        if auc is not None:
            result["auc"] = auc
    elif objective == "multi:softprob":
        probabilities = np.clip(predictions.reshape(labels.size, -1), eps, 1.0)
        picked = probabilities[np.arange(labels.size), labels.astype(int)]
        result["mlogloss"] = float(-np.mean(np.log(picked)))
        result["accuracy"] = float(np.mean(np.argmax(probabilities, axis=1) == labels.astype(int)))
    else:
        errors = predictions - labels
        result["rmse"] = float(np.sqrt(np.mean(errors**2)))
        result["mae"] = float(np.mean(np.abs(errors)))
        total = float(np.sum((labels - labels.mean()) ** 2))
        if total > 0:
            result["r2"] = 1.0 - float(np.sum(errors**2)) / total
    # Rounded for display; finite by construction (an undefined AUC is left out).
    return {name: round(value, 6) for name, value in result.items() if math.isfinite(value)}


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged); None with one class."""
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < scores.size:
        end = start
        while end + 1 < scores.size and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class ProgressCallback(xgboost.callback.TrainingCallback):
    """Reports boosting progress to a function, at most every ``PROGRESS_INTERVAL_S``."""

    def __init__(self, rounds: int, report: Callable[[int, int], None]) -> None:
        super().__init__()
        self._rounds = rounds
        self._report = report
        # None until the first report: time.monotonic() may be smaller than the interval on a
        # freshly booted host, so 0.0 would hold the first report back.
        self._last: float | None = None

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        """Report rounds done; returning False lets training continue."""
        done = epoch + 1
        now = time.monotonic()
        if done == self._rounds or self._last is None or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            self._report(done, self._rounds)
        return False


def set_progress(run_id: int, progress: int, message: str) -> None:
    """Write a run's progress (an UPDATE, so it never overwrites a concurrent final status)."""
    TrainingRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(progress=progress, message=message)


def train(run: TrainingRun) -> tuple[xgboost.Booster, dict[str, float], dict[str, Any], dict[str, Any]]:
    """Train the run's booster; returns it, its validation metrics, a data summary and a drift baseline."""
    params = run.params or {}
    rounds = int(params.get("num_boost_round", 100))
    set_progress(run.pk, 1, "reading the data")
    with run.dataset.open("rb") as handle:
        data = read_dataset(handle, run.label_column)
    feedback = 0
    if run.include_feedback:
        data, feedback = add_feedback(data, run.model_name)
    n_classes = check_labels(run.objective, data.labels)
    train_rows, validation_rows = split(data, float(params.get("validation_fraction", 0.2)))
    xgb_params: dict[str, Any] = {
        "objective": run.objective,
        "max_depth": int(params.get("max_depth", 6)),
        "eta": float(params.get("eta", 0.3)),
        "seed": SPLIT_SEED,
        # The trainer runs one run at a time; OMP_NUM_THREADS bounds the cores.
        "nthread": 0,
    }
    if run.objective == "multi:softprob":
        xgb_params["num_class"] = n_classes
    dtrain = xgboost.DMatrix(
        data.features[train_rows], label=data.labels[train_rows], feature_names=data.feature_names
    )
    dvalidation = xgboost.DMatrix(
        data.features[validation_rows], label=data.labels[validation_rows], feature_names=data.feature_names
    )

    def report(done: int, total: int) -> None:
        set_progress(run.pk, 5 + int(90 * done / total), f"boosting round {done} of {total}")

    set_progress(run.pk, 5, f"training on {train_rows.size} rows, validating on {validation_rows.size}")
    try:
        booster = xgboost.train(
            xgb_params, dtrain, num_boost_round=rounds, callbacks=[ProgressCallback(rounds, report)]
        )
    except xgboost.core.XGBoostError as exc:
        raise TrainingError(f"XGBoost refused the data: {str(exc).strip().splitlines()[0][:300]}") from exc
    predictions = booster.predict(dvalidation)
    metrics = metrics_for(run.objective, data.labels[validation_rows], predictions)
    summary = {
        "rows": int(data.labels.size),
        "train_rows": int(train_rows.size),
        "validation_rows": int(validation_rows.size),
        "feedback_rows": feedback,
        "features": len(data.feature_names),
    }
    baseline = training_baseline(booster, data.features[train_rows], data.feature_names)
    return booster, metrics, summary, baseline


def training_baseline(booster: xgboost.Booster, rows: np.ndarray, feature_names: list[str]) -> dict[str, Any]:
    """The drift baseline (source ``training``) of the rows a booster learnt from, and its outputs on them."""
    if rows.shape[0] > BASELINE_MAX_ROWS:
        picked = np.random.default_rng(SPLIT_SEED).choice(rows.shape[0], BASELINE_MAX_ROWS, replace=False)
        rows = rows[np.sort(picked)]
    matrix = np.asarray(rows, dtype=np.float32)
    # Float32 rows, as the workers predict them, so the output bins match theirs.
    outputs = booster.inplace_predict(matrix, validate_features=False)
    return build_baseline(matrix, outputs, feature_names, SOURCE_TRAINING)


def run_training(run_id: int, *, time_limit_s: float | None = None) -> str:
    """Execute one training run to a final status; returns that status.

    Idempotent, so redelivery under ``acks_late`` is safe: a finished run is
    left alone, and registration and the run's final state are written in one
    transaction, so a run is never registered twice. A run found ``running``
    longer than ``time_limit_s`` was killed by the hard time limit; it is
    failed instead of being retried forever.
    """
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            logger.warning("training run %s does not exist (deleted?); nothing to do", run_id)
            return "missing"
        if run.is_finished:
            logger.info("training run %s is already %s; not training again", run_id, run.status)
            return run.status
        now = timezone.now()
        overdue = (
            run.status == RunStatus.RUNNING
            and run.started_at is not None
            and time_limit_s is not None
            and (now - run.started_at).total_seconds() > time_limit_s
        )
        if overdue:
            _fail(run, f"the trainer was stopped after the time limit of {time_limit_s:g} s")
            return run.status
        run.status, run.started_at, run.progress, run.message = RunStatus.RUNNING, now, 0, "starting"
        run.save(update_fields=["status", "started_at", "progress", "message"])
    try:
        booster, metrics, summary, baseline = train(run)
        set_progress(run.pk, 96, "registering the new version")
        finish(run, booster, metrics, summary, baseline)
    except (TrainingError, RegistryError) as exc:
        _fail(run, str(exc))
    except SoftTimeLimitExceeded:
        _fail(run, "stopped: the run took longer than the trainer's time limit (TRAINER_SOFT_TIME_LIMIT_S)")
    except Exception as exc:
        # Soft time limit, database errors, bugs: still a final, visible status.
        logger.exception("training run %s failed", run_id)
        _fail(run, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    run.refresh_from_db()
    return run.status


def finish(
    run: TrainingRun,
    booster: xgboost.Booster,
    metrics: dict[str, float],
    summary: dict[str, Any],
    baseline: dict[str, Any] | None = None,
) -> None:
    """Register ``booster`` and its drift ``baseline`` as a new version; mark the run succeeded."""
    stage = (run.params or {}).get("stage", Stage.STAGING)
    with tempfile.TemporaryDirectory(prefix="training-") as folder:
        path = Path(folder) / "model.ubj"
        booster.save_model(str(path))
        with transaction.atomic():
            registration = register_model(
                name=run.model_name,
                path=path,
                store=model_store(),
                stage=stage,
                description=f"trained by training run {run.pk} from {Path(run.dataset.name).name}",
                created_by=run.created_by,
                metrics=metrics,
                source=Source.SYSTEM,
                baseline=baseline,
            )
            version = registration.model_version
            updated = TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.SUCCEEDED,
                progress=100,
                message=f"registered {version.name} version {version.version} ({version.stage}); "
                f"{summary['train_rows']} training rows, {summary['validation_rows']} validation rows"
                + (f", {summary['feedback_rows']} from review feedback" if summary["feedback_rows"] else ""),
                metrics={**metrics, **{f"data_{key}": value for key, value in summary.items()}},
                model_version=version,
                finished_at=timezone.now(),
            )
            if updated != 1:
                # Failed meanwhile (e.g. by an operator): roll the registration back too.
                raise TrainingError("the run was stopped while it was registering its model")


def _fail(run: TrainingRun, message: str) -> None:
    TrainingRun.objects.filter(pk=run.pk).exclude(status=RunStatus.SUCCEEDED).update(
        status=RunStatus.FAILED, message=message[:2000], finished_at=timezone.now()
    )
    run.status = RunStatus.FAILED
