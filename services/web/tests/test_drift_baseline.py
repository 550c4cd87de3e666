"""Drift baselines stored with model versions: from a --baseline file, from training, on the page."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from django.core.files.base import ContentFile
from django.core.management.base import CommandError
from django.test import Client

from inference_common.drift import OUTPUT_FEATURE, feature_psi, validate_baseline
from registry.models import ModelVersion
from training.models import RunStatus, TrainingRun
from training.trainer import run_training

pytestmark = pytest.mark.django_db

NAMES = ["age", "income", "visits", "tenure"]


def _write_csv(path: Path, header: list[str], rows: np.ndarray) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows.tolist())
    return path


def _rows(n: int, seed: int = 0, columns: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, columns))


def test_register_model_stores_a_baseline_built_from_the_csv_file(
    booster_files: Callable[..., Path],
    model_store: Path,
    run_command: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    model_file = booster_files("binary", ".json", feature_names=NAMES)
    rows = _rows(1000, seed=1)
    # Columns in another order plus an extra one: matched by name, the extra ignored.
    data = np.column_stack([rows[:, [3, 1, 0, 2]], np.arange(1000)])
    baseline_file = _write_csv(tmp_path / "data.csv", ["tenure", "income", "age", "visits", "id"], data)

    out = run_command(
        "register_model", "--name", "churn", "--file", str(model_file), "--baseline", str(baseline_file)
    )

    version = ModelVersion.objects.get(name="churn", version=out[-1])
    baseline = validate_baseline(version.baseline, NAMES)
    assert baseline["source"] == "file"
    assert baseline["n_rows"] == 1000
    assert [entry["name"] for entry in baseline["features"]] == NAMES
    # The bins describe the file's columns by name, not by position.
    assert feature_psi(baseline["features"][0], rows[:, 0]) < 0.02
    assert feature_psi(baseline["features"][0], rows[:, 3]) < 0.05
    assert feature_psi(baseline["features"][0], rows[:, 0] + 1.5) > 0.25
    # The output bins come from the booster's own predictions on those rows.
    booster = xgboost.Booster(model_file=str(model_file))
    outputs = booster.inplace_predict(rows.astype(np.float32))
    assert baseline["output"]["name"] == OUTPUT_FEATURE
    assert feature_psi(baseline["output"], outputs) == pytest.approx(0.0, abs=1e-6)


def test_register_model_refuses_a_baseline_file_without_a_model_feature(
    booster_files: Callable[..., Path],
    model_store: Path,
    run_command: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    model_file = booster_files("binary", ".json", feature_names=NAMES)
    baseline_file = _write_csv(tmp_path / "data.csv", ["age", "income", "visits"], _rows(10, columns=3))

    with pytest.raises(CommandError, match=r"missing column.*'tenure'"):
        run_command(
            "register_model", "--name", "churn", "--file", str(model_file), "--baseline", str(baseline_file)
        )
    assert not ModelVersion.objects.filter(name="churn").exists()


def test_register_model_without_a_baseline_leaves_it_to_the_workers(
    booster_files: Callable[..., Path], model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    out = run_command("register_model", "--name", "churn", "--file", str(booster_files("regression")))
    assert ModelVersion.objects.get(name="churn", version=out[-1]).baseline is None


def test_a_training_run_stores_the_baseline_of_its_training_rows(model_store: Path, media_root: Any) -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(400, 3)) * [1.0, 10.0, 100.0]
    labels = (features[:, 0] > 0).astype(float)
    lines = [
        "a,b,c,label",
        *(",".join(map(str, [*row, label])) for row, label in zip(features, labels, strict=True)),
    ]
    run = TrainingRun.objects.create(
        model_name="trained",
        dataset=ContentFile("\n".join(lines).encode(), name="data.csv"),
        label_column="label",
        objective="binary:logistic",
        params={"num_boost_round": 5, "max_depth": 2, "validation_fraction": 0.25},
        created_by="admin-user",
    )

    assert run_training(run.pk) == RunStatus.SUCCEEDED

    run.refresh_from_db()
    baseline = validate_baseline(run.model_version.baseline, ["a", "b", "c"])
    assert baseline["source"] == "training"
    assert baseline["n_rows"] == 300  # the training split, not the validation rows
    for i, entry in enumerate(baseline["features"]):
        assert feature_psi(entry, features[:, i]) < 0.05
        assert feature_psi(entry, features[:, i] + 1.5 * features[:, i].std()) > 0.25


def test_the_model_page_shows_whether_a_version_has_a_baseline_and_its_source(
    client_as: Callable[[str | None], Client], make_version: Callable[..., ModelVersion]
) -> None:
    baseline = {"format": 1, "source": "file", "n_rows": 1234, "features": [], "output": {}}
    make_version(name="churn", version="1", baseline=baseline)
    make_version(name="churn", version="2")

    page = client_as("viewer").get("/models/churn/").content.decode()

    assert 'data-baseline="file"' in page
    assert "baseline file (1234 rows)" in page
    assert 'data-baseline="none"' in page
    assert "none yet" in page
