"""``set_model_stage``: moving versions between stages, one production version per name."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.management import CommandError

from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def stages(name: str) -> dict[str, str]:
    """Version -> stage for ``name``."""
    return dict(ModelVersion.objects.filter(name=name).values_list("version", "stage"))


def test_it_promotes_a_version_and_archives_the_previous_production_one(
    make_version: Callable[..., ModelVersion],
    run_command: Callable[..., list[str]],
) -> None:
    make_version("m", "1", "production")
    make_version("m", "2")
    make_version("other", "1", "production")

    lines = run_command("set_model_stage", "--name", "m", "--version", "2", "--stage", "production")

    assert stages("m") == {"1": "archived", "2": "production"}
    assert stages("other") == {"1": "production"}
    assert lines[-1] == "m version 2 is now production"


def test_it_promotes_when_no_version_is_in_production(
    make_version: Callable[..., ModelVersion], run_command: Callable[..., list[str]]
) -> None:
    make_version("m", "1")

    run_command("set_model_stage", "--name", "m", "--version", "1", "--stage", "production")

    assert stages("m") == {"1": "production"}


def test_it_archives_a_production_version(
    make_version: Callable[..., ModelVersion], run_command: Callable[..., list[str]]
) -> None:
    make_version("m", "1", "production")

    run_command("set_model_stage", "--name", "m", "--version", "1", "--stage", "archived")

    assert stages("m") == {"1": "archived"}


def test_it_leaves_a_version_already_in_the_stage_alone(
    make_version: Callable[..., ModelVersion], run_command: Callable[..., list[str]]
) -> None:
    make_version("m", "1", "production")

    lines = run_command("set_model_stage", "--name", "m", "--version", "1", "--stage", "production")

    assert stages("m") == {"1": "production"}
    assert "nothing changed" in lines[-1]


def test_it_rejects_an_unknown_version(
    make_version: Callable[..., ModelVersion], run_command: Callable[..., list[str]]
) -> None:
    make_version("m", "1")

    with pytest.raises(CommandError, match="not registered"):
        run_command("set_model_stage", "--name", "m", "--version", "7", "--stage", "production")


def test_it_rejects_an_unknown_stage(
    make_version: Callable[..., ModelVersion], run_command: Callable[..., list[str]]
) -> None:
    make_version("m", "1")

    with pytest.raises(CommandError):
        run_command("set_model_stage", "--name", "m", "--version", "1", "--stage", "live")


def test_it_puts_a_version_in_canary_with_a_traffic_share(
    make_version: Callable[..., ModelVersion], run_command: Callable[..., list[str]]
) -> None:
    make_version("m", "1", "production")
    make_version("m", "2")

    run_command(
        "set_model_stage", "--name", "m", "--version", "2", "--stage", "canary", "--traffic-percent", "20"
    )

    assert stages("m") == {"1": "production", "2": "canary"}
    assert ModelVersion.objects.get(name="m", version="2").traffic_percent == 20


def test_it_refuses_a_canary_without_a_traffic_share(
    make_version: Callable[..., ModelVersion], run_command: Callable[..., list[str]]
) -> None:
    make_version("m", "2")

    with pytest.raises(CommandError, match="traffic percentage"):
        run_command("set_model_stage", "--name", "m", "--version", "2", "--stage", "canary")
    assert stages("m") == {"2": "staging"}
