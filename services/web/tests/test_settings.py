"""The settings modules, loaded in a fresh process as a deployment would load them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WEB_DIR = Path(__file__).resolve().parents[1]
SECRET = "prod-test-9fK2mQ7vX4pL8rT1wZ6yB3nC5hJ0dG2sA7eU4iO9kV1"


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py with a clean DJANGO_* environment plus ``env``."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    clean["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=WEB_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_it_passes_the_deployment_checklist_with_production_settings(tmp_path: Path) -> None:
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=SECRET,
        DJANGO_ALLOWED_HOSTS="inference.example.com",
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_reads_the_secret_key_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")

    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY_FILE=str(secret_file),
        DJANGO_ALLOWED_HOSTS="inference.example.com",
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("missing", "env"),
    [
        ("DJANGO_SECRET_KEY", {"DJANGO_ALLOWED_HOSTS": "inference.example.com"}),
        ("DJANGO_ALLOWED_HOSTS", {"DJANGO_SECRET_KEY": SECRET}),
    ],
)
def test_it_refuses_to_start_in_production_without_required_settings(
    missing: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = manage(tmp_path, "check", DJANGO_SETTINGS_MODULE="config.settings.production", **env)

    assert result.returncode != 0
    assert f"{missing} is required" in result.stderr


def test_it_names_a_malformed_variable(tmp_path: Path) -> None:
    result = manage(tmp_path, "check", DJANGO_SETTINGS_MODULE="config.settings.local", DJANGO_DEBUG="maybe")

    assert result.returncode != 0
    assert "DJANGO_DEBUG must be a boolean" in result.stderr


def test_it_runs_locally_with_no_configuration(tmp_path: Path) -> None:
    result = manage(tmp_path, "check", DJANGO_SETTINGS_MODULE="config.settings.local")

    assert result.returncode == 0, result.stderr
