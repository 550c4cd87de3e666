"""Training runs (/models/train/): the form, permissions, and the training task run in-process.

The task trains with the real XGBoost on a small CSV, against the real
database, and registers the model through the registry like any other.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from config.celery_app import create_celery
from predictions.models import PredictionRecord
from registry.models import ModelVersion
from reviews.models import ReviewItem
from training.models import RunStatus, TrainingRun
from training.services import enqueue
from training.trainer import Dataset, metrics_for, read_dataset, run_training, split

# Uploads are stored: each test gets its own MEDIA_ROOT.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

FEATURES = ["age", "income", "visits"]


def dataset(kind: str, n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable features and labels for a binary, multi-class or regression objective."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, len(FEATURES)))
    if kind == "binary":
        labels = (features[:, 0] + features[:, 1] > 0).astype(float)
    elif kind == "multiclass":
        labels = np.digitize(features[:, 0], [-0.5, 0.5]).astype(float)
    else:
        labels = features @ np.array([1.0, -2.0, 0.5])
    return features, labels


def csv_bytes(features: np.ndarray, labels: np.ndarray, header: list[str] | None = None) -> bytes:
    """A CSV with the feature columns and a ``label`` column."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header or [*FEATURES, "label"])
    for row, label in zip(features.tolist(), labels.tolist(), strict=True):
        writer.writerow([*row, label])
    return out.getvalue().encode()


def make_run(kind: str, objective: str, *, stage: str = "staging", **extra: Any) -> TrainingRun:
    """A queued run over a generated CSV."""
    features, labels = dataset(kind)
    params = {"num_boost_round": 20, "max_depth": 3, "eta": 0.3, "validation_fraction": 0.25, "stage": stage}
    return TrainingRun.objects.create(
        model_name=extra.pop("model_name", f"{kind}-model"),
        dataset=ContentFile(csv_bytes(features, labels), name="data.csv"),
        label_column="label",
        objective=objective,
        params=params,
        created_by="admin-user",
        **extra,
    )


def form_data(content: bytes, **overrides: Any) -> dict[str, Any]:
    """A complete, valid training form submission."""
    data = {
        "model_name": "churn",
        "dataset": SimpleUploadedFile("train.csv", content),
        "label_column": "label",
        "objective": "binary:logistic",
        "num_boost_round": 10,
        "max_depth": 3,
        "eta": 0.3,
        "validation_fraction": 0.2,
        "stage": "staging",
    }
    data.update(overrides)
    return data


def validation_metrics_of(version: ModelVersion, store: Path, run: TrainingRun) -> dict[str, float]:
    """Recompute the hold-out metrics from the registered artifact itself."""
    booster = xgboost.Booster(model_file=str(store / version.artifact_path))
    with run.dataset.open("rb") as handle:
        data = read_dataset(handle, "label")
    _, validation = split(data, run.params["validation_fraction"])
    matrix = xgboost.DMatrix(data.features[validation], feature_names=data.feature_names)
    return metrics_for(run.objective, data.labels[validation], booster.predict(matrix))


# -- the task --------------------------------------------------------------------------------


def test_it_trains_registers_and_stores_metrics_that_match_the_registered_booster(model_store: Path) -> None:
    run = make_run("binary", "binary:logistic")

    status = run_training(run.pk)

    run.refresh_from_db()
    version = run.model_version
    assert status == RunStatus.SUCCEEDED == run.status
    assert run.progress == 100
    assert run.finished_at is not None
    assert run.started_at is not None
    assert version is not None
    assert (version.name, version.stage, version.objective) == ("binary-model", "staging", "binary:logistic")
    assert version.feature_names == FEATURES
    assert version.created_by == "admin-user"
    assert set(version.metrics) == {"auc", "logloss", "accuracy"}
    # The stored metrics are those of the artifact the workers will load.
    assert validation_metrics_of(version, model_store, run) == version.metrics
    assert version.metrics["accuracy"] > 0.8
    assert run.metrics["auc"] == version.metrics["auc"]
    assert (run.metrics["data_train_rows"], run.metrics["data_validation_rows"]) == (150, 50)
    assert "registered binary-model version 1" in run.message


@pytest.mark.parametrize(
    ("kind", "objective", "keys", "n_outputs"),
    [
        ("multiclass", "multi:softprob", {"mlogloss", "accuracy"}, 3),
        ("regression", "reg:squarederror", {"rmse", "mae", "r2"}, 1),
    ],
)
def test_it_computes_the_metrics_of_each_objective(
    model_store: Path, kind: str, objective: str, keys: set[str], n_outputs: int
) -> None:
    run = make_run(kind, objective)

    assert run_training(run.pk) == RunStatus.SUCCEEDED

    run.refresh_from_db()
    assert set(run.model_version.metrics) == keys
    assert run.model_version.n_outputs == n_outputs
    assert validation_metrics_of(run.model_version, model_store, run) == run.model_version.metrics


def test_it_registers_in_production_when_asked_and_archives_the_previous_one(model_store: Path) -> None:
    first = make_run("binary", "binary:logistic", stage="production", model_name="churn")
    second = make_run("binary", "binary:logistic", stage="production", model_name="churn")

    run_training(first.pk)
    run_training(second.pk)

    first.refresh_from_db()
    second.refresh_from_db()
    assert second.model_version.stage == "production"
    assert ModelVersion.objects.get(pk=first.model_version.pk).stage == "archived"
    assert second.model_version.version == "2"


def test_a_redelivered_message_for_a_finished_run_does_not_train_again(model_store: Path) -> None:
    run = make_run("binary", "binary:logistic")
    run_training(run.pk)

    assert run_training(run.pk) == RunStatus.SUCCEEDED

    assert ModelVersion.objects.filter(name="binary-model").count() == 1


def test_it_fails_with_a_clear_message_when_the_labels_do_not_fit_the_objective(model_store: Path) -> None:
    run = make_run("multiclass", "binary:logistic")

    assert run_training(run.pk) == RunStatus.FAILED

    run.refresh_from_db()
    assert "binary:logistic needs labels 0 and 1" in run.message
    assert run.finished_at is not None
    assert run.model_version is None
    assert not ModelVersion.objects.exists()


def test_it_fails_a_run_the_hard_time_limit_killed_instead_of_training_it_forever(model_store: Path) -> None:
    run = make_run("binary", "binary:logistic")
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now() - timedelta(hours=2)
    )

    assert run_training(run.pk, time_limit_s=3600) == RunStatus.FAILED

    run.refresh_from_db()
    assert "time limit of 3600 s" in run.message
    assert not ModelVersion.objects.exists()


def test_it_restarts_a_run_whose_trainer_died_within_the_time_limit(model_store: Path) -> None:
    run = make_run("binary", "binary:logistic")
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=timezone.now())

    assert run_training(run.pk, time_limit_s=3600) == RunStatus.SUCCEEDED


def decided_feedback(version: ModelVersion, rows: np.ndarray, labels: np.ndarray) -> None:
    """Review items of ``version``, decided, with their features (what reviewers produce)."""
    for index, (row, label) in enumerate(zip(rows.tolist(), labels.tolist(), strict=True)):
        record = PredictionRecord.objects.create(
            request_id=f"fb-{version.pk}-{index}",
            model_version=version,
            protocol="v2",
            n_rows=1,
            inputs_digest="0" * 64,
            latency_ms=1.0,
            predict_ms=0.1,
            batch_size=1,
            device="cpu",
            status="ok",
        )
        ReviewItem.objects.create(
            prediction=record,
            row_index=0,
            model_version=version,
            features=row,
            outputs=[0.5],
            score=0.5,
            reason="in the uncertainty band",
            status="overridden",
            label=label,
            decision_reason="checked by hand",
            decided_by="reviewer-user",
            decided_at=timezone.now(),
        )
    # The pending item has no label yet: never training data.
    ReviewItem.objects.create(
        prediction=record,
        row_index=1,
        model_version=version,
        features=rows[0].tolist(),
        outputs=[0.5],
        score=0.5,
        reason="band",
    )


def test_it_adds_decided_review_feedback_only_when_asked(model_store: Path) -> None:
    base = make_run("binary", "binary:logistic", model_name="churn")
    run_training(base.pk)
    base.refresh_from_db()
    rows, labels = dataset("binary", n=12, seed=5)
    decided_feedback(base.model_version, rows, labels)
    with_feedback = make_run("binary", "binary:logistic", model_name="churn", include_feedback=True)
    without = make_run("binary", "binary:logistic", model_name="churn")

    run_training(with_feedback.pk)
    run_training(without.pk)

    with_feedback.refresh_from_db()
    without.refresh_from_db()
    assert with_feedback.status == without.status == RunStatus.SUCCEEDED
    assert with_feedback.metrics["data_feedback_rows"] == 12
    assert with_feedback.metrics["data_rows"] == 212
    assert "12 from review feedback" in with_feedback.message
    assert without.metrics["data_feedback_rows"] == 0
    assert without.metrics["data_rows"] == 200


def test_feedback_columns_are_matched_to_the_csv_by_name(model_store: Path) -> None:
    from training.trainer import add_feedback

    base = make_run("binary", "binary:logistic", model_name="churn")
    run_training(base.pk)
    base.refresh_from_db()
    decided_feedback(base.model_version, np.array([[1.0, 2.0, 3.0]]), np.array([1.0]))
    reordered = Dataset(
        features=np.zeros((1, 3)), labels=np.zeros(1), feature_names=["visits", "age", "income"]
    )

    merged, added = add_feedback(reordered, "churn")

    assert added == 1
    assert merged.features[-1].tolist() == [3.0, 1.0, 2.0]


def test_progress_reports_every_round_when_unthrottled_and_always_the_last(monkeypatch: Any) -> None:
    from training import trainer

    features, labels = dataset("binary", n=50)
    matrix = xgboost.DMatrix(features, label=labels)
    unthrottled: list[tuple[int, int]] = []
    throttled: list[tuple[int, int]] = []

    monkeypatch.setattr(trainer, "PROGRESS_INTERVAL_S", 0.0)
    xgboost.train(
        {"max_depth": 2}, matrix, 5, callbacks=[trainer.ProgressCallback(5, lambda *a: unthrottled.append(a))]
    )
    monkeypatch.setattr(trainer, "PROGRESS_INTERVAL_S", 3600.0)
    xgboost.train(
        {"max_depth": 2}, matrix, 5, callbacks=[trainer.ProgressCallback(5, lambda *a: throttled.append(a))]
    )

    assert unthrottled == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    # The first round reports (nothing reported yet), then only the final one.
    assert throttled == [(1, 5), (5, 5)]


# -- enqueueing ------------------------------------------------------------------------------


def test_it_fails_the_run_visibly_when_the_broker_refuses_it() -> None:
    run = make_run("binary", "binary:logistic")
    app = create_celery("amqp://guest:guest@127.0.0.1:1//", "unreachable")

    assert enqueue(run.pk, app=app) is False

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "message broker is unavailable" in run.message


# -- the form and pages ----------------------------------------------------------------------


def test_an_admin_starts_a_run_that_is_audited_and_enqueued_after_commit(
    client_as: Callable[[str | None], Client],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_as("admin")
    features, labels = dataset("binary", n=30)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/models/train/new/", form_data(csv_bytes(features, labels), include_feedback="on")
        )

    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/models/train/{run.pk}/"
    assert (run.model_name, run.objective, run.label_column, run.include_feedback) == (
        "churn",
        "binary:logistic",
        "label",
        True,
    )
    assert run.params == {
        "num_boost_round": 10,
        "max_depth": 3,
        "eta": 0.3,
        "validation_fraction": 0.2,
        "stage": "staging",
    }
    assert run.created_by == "admin-user"
    assert run.dataset.read() == csv_bytes(features, labels)
    assert len(callbacks) == 1
    event = AuditEvent.objects.get(action="training.start")
    assert (event.actor, event.object_id) == ("admin-user", str(run.pk))


@pytest.mark.parametrize(
    ("content", "overrides", "message"),
    [
        (b"a,b\n1,2\n", {}, "the label column &#x27;label&#x27; is not in the file"),
        (b"a,b,label\n1,x,0\n", {}, "line 2, column &#x27;b&#x27;: &#x27;x&#x27; is not a number"),
        (b"a,b,label\n1,2,\n", {}, "data row 1: the label &#x27;label&#x27; is empty"),
        (b"a,b,label\n1,2,0\n1,2,3\n", {}, "binary:logistic needs labels 0 and 1"),
        (b"a[0],b,label\n1,2,0\n", {}, "feature names may not contain"),
        (b"a,b,label\n1,2,0\n", {"model_name": "bad name/x"}, "use letters, digits"),
    ],
)
def test_the_form_refuses_bad_data_with_a_clear_error(
    client_as: Callable[[str | None], Client], content: bytes, overrides: dict[str, Any], message: str
) -> None:
    client = client_as("admin")

    response = client.post("/models/train/new/", form_data(content, **overrides))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_the_form_prefills_the_model_name_from_the_query(client_as: Callable[[str | None], Client]) -> None:
    client = client_as("admin")

    response = client.get("/models/train/new/?name=churn")

    assert response.status_code == 200
    assert 'value="churn"' in response.content.decode()


def test_a_viewer_sees_runs_but_cannot_start_one(
    client_as: Callable[[str | None], Client], model_store: Path
) -> None:
    run = make_run("binary", "binary:logistic")
    run_training(run.pk)
    client = client_as("viewer")

    assert client.get("/models/train/").status_code == 200
    detail = client.get(f"/models/train/{run.pk}/")
    assert detail.status_code == 200
    assert b'http-equiv="refresh"' not in detail.content
    assert b"/models/binary-model/" in detail.content
    assert client.get("/models/train/new/").status_code == 403
    features, labels = dataset("binary", n=10)
    assert client.post("/models/train/new/", form_data(csv_bytes(features, labels))).status_code == 403
    assert TrainingRun.objects.count() == 1
    status = client.get(f"/models/train/{run.pk}/status.json").json()
    assert (status["status"], status["progress"]) == ("succeeded", 100)
    assert status["model_version"] == {"name": "binary-model", "version": "1"}


def test_a_queued_run_page_refreshes_itself(client_as: Callable[[str | None], Client]) -> None:
    run = make_run("binary", "binary:logistic")
    client = client_as("analyst")

    response = client.get(f"/models/train/{run.pk}/")

    assert response.status_code == 200
    assert b'http-equiv="refresh"' in response.content


def test_a_user_without_a_role_cannot_see_runs(client_as: Callable[[str | None], Client]) -> None:
    client = client_as(None)

    assert client.get("/models/train/").status_code == 403
