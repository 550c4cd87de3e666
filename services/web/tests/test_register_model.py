"""``register_model``: what it records about a booster, where it stores it, how it versions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import CommandError

from registry.models import ModelVersion

pytestmark = pytest.mark.django_db

CASES = [
    # kind, extension, objective, n_outputs
    ("binary", ".json", "binary:logistic", 1),
    ("binary", ".ubj", "binary:logistic", 1),
    ("multiclass", ".json", "multi:softprob", 3),
    ("multiclass", ".ubj", "multi:softprob", 3),
    ("regression", ".json", "reg:squarederror", 1),
    ("regression", ".ubj", "reg:squarederror", 1),
]


@pytest.mark.parametrize(("kind", "ext", "objective", "n_outputs"), CASES)
def test_it_records_what_the_booster_says_about_itself(
    kind: str,
    ext: str,
    objective: str,
    n_outputs: int,
    booster_files: Callable[..., Path],
    model_store: Path,
    run_command: Callable[..., list[str]],
) -> None:
    path = booster_files(kind, ext)

    lines = run_command("register_model", "--name", kind, "--file", str(path))

    assert lines[-1] == "1"
    model_version = ModelVersion.objects.get(name=kind, version="1")
    assert model_version.objective == objective
    assert model_version.n_outputs == n_outputs
    assert model_version.n_features == 4
    assert model_version.feature_names == ["f0", "f1", "f2", "f3"]
    assert model_version.stage == "staging"
    assert model_version.created_by.startswith("cli:")
    assert f"Registered {kind} version 1" in lines[-2]


@pytest.mark.parametrize("ext", [".json", ".ubj"])
def test_it_copies_the_file_into_the_store_under_its_sha256(
    ext: str, booster_files: Callable[..., Path], model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    path = booster_files("binary", ext)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    run_command("register_model", "--name", "churn", "--file", str(path))

    model_version = ModelVersion.objects.get(name="churn")
    assert model_version.sha256 == sha256
    assert model_version.artifact_path == f"{sha256}{ext}"
    stored = model_store / model_version.artifact_path
    assert stored.read_bytes() == path.read_bytes()
    # Only the artifact is left: the temporary file was renamed into place.
    assert [entry.name for entry in model_store.iterdir()] == [f"{sha256}{ext}"]


def test_it_keeps_the_feature_names_saved_with_the_booster(
    booster_files: Callable[..., Path], model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    names = ["age", "income", "tenure", "score"]
    path = booster_files("binary", ".ubj", feature_names=names)

    run_command("register_model", "--name", "named", "--file", str(path))

    assert ModelVersion.objects.get(name="named").feature_names == names


def test_it_numbers_versions_after_the_highest_numeric_one(
    booster_files: Callable[..., Path], model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    path = booster_files("binary")

    first = run_command("register_model", "--name", "m", "--file", str(path))[-1]
    second = run_command("register_model", "--name", "m", "--file", str(path))[-1]
    run_command("register_model", "--name", "m", "--file", str(path), "--version", "9")
    run_command("register_model", "--name", "m", "--file", str(path), "--version", "v10-rc")
    after_explicit = run_command("register_model", "--name", "m", "--file", str(path))[-1]
    other_name = run_command("register_model", "--name", "other", "--file", str(path))[-1]

    assert (first, second, after_explicit, other_name) == ("1", "2", "10", "1")


def test_it_does_not_rewrite_an_identical_artifact(
    booster_files: Callable[..., Path], model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    path = booster_files("regression", ".ubj")
    run_command("register_model", "--name", "m", "--file", str(path))
    stored = model_store / ModelVersion.objects.get(name="m", version="1").artifact_path
    first_write = stored.stat().st_mtime_ns

    run_command("register_model", "--name", "m", "--file", str(path))

    assert stored.stat().st_mtime_ns == first_write
    assert ModelVersion.objects.get(name="m", version="2").artifact_path == stored.name


def test_it_demotes_the_current_production_version_when_registering_to_production(
    booster_files: Callable[..., Path], model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    path = booster_files("binary")
    run_command("register_model", "--name", "m", "--file", str(path), "--stage", "production")

    lines = run_command("register_model", "--name", "m", "--file", str(path), "--stage", "production")

    stages = dict(ModelVersion.objects.filter(name="m").values_list("version", "stage"))
    assert stages == {"1": "archived", "2": "production"}
    assert any("Archived m version 1" in line for line in lines)
    assert lines[-1] == "2"


def test_it_stores_the_description(
    booster_files: Callable[..., Path], model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    path = booster_files("binary")

    run_command("register_model", "--name", "m", "--file", str(path), "--description", "first cut")

    assert ModelVersion.objects.get(name="m").description == "first cut"


def test_it_rejects_a_duplicate_version(
    booster_files: Callable[..., Path], model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    path = booster_files("binary")
    run_command("register_model", "--name", "m", "--file", str(path), "--version", "2024.1")

    with pytest.raises(CommandError, match="already registered"):
        run_command("register_model", "--name", "m", "--file", str(path), "--version", "2024.1")

    assert ModelVersion.objects.filter(name="m").count() == 1


@pytest.mark.parametrize("version", ["", "-1", "has space", "a/b", "x" * 65])
def test_it_rejects_a_malformed_version(
    version: str, booster_files: Callable[..., Path], model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    with pytest.raises(CommandError, match="invalid version"):
        run_command(
            "register_model", "--name", "m", "--file", str(booster_files("binary")), "--version", version
        )


def test_it_rejects_a_file_that_is_not_a_booster(
    tmp_path: Path, model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    bogus = tmp_path / "model.json"
    bogus.write_text(json.dumps({"hello": "world"}))

    with pytest.raises(CommandError, match="not a valid XGBoost model"):
        run_command("register_model", "--name", "m", "--file", str(bogus))

    assert not ModelVersion.objects.exists()
    assert not model_store.exists()


def test_it_rejects_a_binary_file_that_is_not_a_booster(
    tmp_path: Path, model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    bogus = tmp_path / "model.ubj"
    bogus.write_bytes(b"\x00\x01garbage\xff" * 10)

    with pytest.raises(CommandError, match="not a valid XGBoost model"):
        run_command("register_model", "--name", "m", "--file", str(bogus))


@pytest.mark.parametrize("name", ["model.pkl", "model.bin", "model"])
def test_it_refuses_other_file_extensions(
    name: str, tmp_path: Path, model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    other = tmp_path / name
    other.write_bytes(b"{}")

    with pytest.raises(CommandError, match="unsupported model file extension"):
        run_command("register_model", "--name", "m", "--file", str(other))


def test_it_reports_a_missing_file(
    tmp_path: Path, model_store: Path, run_command: Callable[..., list[str]]
) -> None:
    with pytest.raises(CommandError, match="no such file"):
        run_command("register_model", "--name", "m", "--file", str(tmp_path / "absent.ubj"))
