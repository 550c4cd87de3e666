"""Roles: the four groups and their permissions, the permission matrix of the pages, user commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError
from django.test import Client

from accounts.roles import ROLE_PERMISSIONS, ROLES
from apikeys.models import ApiKey
from apikeys.services import issue_key
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def permission_names(group: Group) -> set[str]:
    """``app_label.codename`` of every permission of ``group``."""
    return {
        f"{app_label}.{codename}"
        for app_label, codename in group.permissions.values_list("content_type__app_label", "codename")
    }


# Groups --------------------------------------------------------------------------


def test_the_migration_created_the_four_groups_with_their_permissions() -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)
    for role in ROLES:
        assert permission_names(Group.objects.get(name=role)) == set(ROLE_PERMISSIONS[role])


def test_a_viewer_may_read_but_not_promote_or_create_keys() -> None:
    viewer = set(ROLE_PERMISSIONS["viewer"])

    assert "registry.view_modelversion" in viewer
    assert not viewer & {"registry.promote_modelversion", "apikeys.add_apikey", "apikeys.view_apikey"}


def test_sync_roles_puts_back_permissions_removed_by_hand(run_command: Callable[..., list[str]]) -> None:
    admin = Group.objects.get(name="admin")
    admin.permissions.remove(Permission.objects.get(codename="promote_modelversion"))
    admin.permissions.add(Permission.objects.get(codename="delete_apikey"))

    lines = run_command("sync_roles")

    assert permission_names(admin) == set(ROLE_PERMISSIONS["admin"])
    assert any(line.startswith("admin:") for line in lines)


# Permission matrix ---------------------------------------------------------------

#: (method, url) -> expected status per role (admin, reviewer, analyst, viewer).
MATRIX: list[tuple[str, str, dict[str, int]]] = [
    ("get", "/models/", {"admin": 200, "reviewer": 200, "analyst": 200, "viewer": 200}),
    ("get", "/models/churn/", {"admin": 200, "reviewer": 200, "analyst": 200, "viewer": 200}),
    ("get", "/models/churn/compare/", {"admin": 200, "reviewer": 200, "analyst": 200, "viewer": 200}),
    ("get", "/models/upload/", {"admin": 200, "reviewer": 403, "analyst": 403, "viewer": 403}),
    ("post", "/models/upload/", {"admin": 400, "reviewer": 403, "analyst": 403, "viewer": 403}),
    (
        "post",
        "/models/churn/versions/2/stage/",
        {"admin": 302, "reviewer": 403, "analyst": 403, "viewer": 403},
    ),
    ("post", "/models/churn/rollback/", {"admin": 302, "reviewer": 403, "analyst": 403, "viewer": 403}),
    ("get", "/keys/", {"admin": 200, "reviewer": 403, "analyst": 403, "viewer": 403}),
    ("get", "/keys/new/", {"admin": 200, "reviewer": 403, "analyst": 403, "viewer": 403}),
    ("post", "/keys/new/", {"admin": 200, "reviewer": 403, "analyst": 403, "viewer": 403}),
    ("get", "/keys/{key}/edit/", {"admin": 200, "reviewer": 403, "analyst": 403, "viewer": 403}),
    ("get", "/keys/{key}/revoke/", {"admin": 200, "reviewer": 403, "analyst": 403, "viewer": 403}),
    ("post", "/keys/{key}/revoke/", {"admin": 302, "reviewer": 403, "analyst": 403, "viewer": 403}),
]

POST_DATA = {
    "/models/churn/versions/2/stage/": {"stage": "production"},
    "/keys/new/": {"name": "matrix", "scopes": ["predict"], "rate_limit_per_minute": "5"},
}


@pytest.fixture
def objects(make_version: Callable[..., ModelVersion]) -> dict[str, str]:
    """A model with a production and a staging version, and one key."""
    make_version("churn", "1", "production")
    make_version("churn", "2", "staging")
    api_key = issue_key(name="ci", scopes=["predict"], rate_limit_per_minute=1).api_key
    return {"key": str(api_key.pk)}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url", "expected"), MATRIX, ids=[f"{m} {u}" for m, u, _ in MATRIX])
def test_each_role_gets_exactly_the_pages_its_permissions_allow(
    login: Callable[..., User],
    client: Client,
    objects: dict[str, str],
    role: str,
    method: str,
    url: str,
    expected: dict[str, int],
) -> None:
    login(client, role)
    path = url.format(**objects)

    response = getattr(client, method)(path, POST_DATA.get(url, {}))

    assert response.status_code == expected[role]


def test_a_refused_promotion_and_key_creation_change_nothing(
    login: Callable[..., User], client: Client, objects: dict[str, str]
) -> None:
    login(client, "viewer")

    client.post("/models/churn/versions/2/stage/", {"stage": "production"})
    client.post("/keys/new/", POST_DATA["/keys/new/"])

    assert ModelVersion.objects.get(version="2").stage == "staging"
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("url", sorted({url for _, url, _ in MATRIX}))
def test_anonymous_users_are_sent_to_the_login_page(
    client: Client, objects: dict[str, str], url: str, method: str
) -> None:
    path = url.format(**objects)

    response = getattr(client, method)(path)

    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")


# create_user ---------------------------------------------------------------------

STRONG = "correct-horse-battery-staple-42"


def test_it_creates_a_user_with_a_role_and_the_password_from_the_environment(
    run_command: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DJANGO_USER_PASSWORD", STRONG)

    lines = run_command("create_user", "ana", "--role", "analyst")

    user = User.objects.get(username="ana")
    assert authenticate(username="ana", password=STRONG) == user
    assert list(user.groups.values_list("name", flat=True)) == ["analyst"]
    assert (user.is_staff, user.is_superuser) == (False, False)
    assert user.has_perm("predictions.export_predictionrecord")
    assert lines[-1].startswith("Created user 'ana'")


def test_it_reads_the_password_from_a_file(run_command: Callable[..., list[str]], tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(STRONG + "\n")

    run_command("create_user", "root", "--role", "admin", "--superuser", "--password-file", str(secret))

    user = authenticate(username="root", password=STRONG)
    assert user is not None
    assert user.is_superuser
    assert user.is_staff


def test_running_it_again_updates_the_password_and_the_role(
    run_command: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DJANGO_USER_PASSWORD", STRONG)
    run_command("create_user", "sam", "--role", "viewer")
    monkeypatch.setenv("DJANGO_USER_PASSWORD", STRONG + "-new")

    lines = run_command("create_user", "sam", "--role", "reviewer")

    user = User.objects.get(username="sam")
    assert User.objects.filter(username="sam").count() == 1
    assert authenticate(username="sam", password=STRONG) is None
    assert authenticate(username="sam", password=STRONG + "-new") == user
    assert list(user.groups.values_list("name", flat=True)) == ["reviewer"]
    assert lines[-1].startswith("Updated user 'sam'")


def test_it_refuses_to_run_without_a_password(
    run_command: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DJANGO_USER_PASSWORD", raising=False)

    with pytest.raises(CommandError, match="DJANGO_USER_PASSWORD"):
        run_command("create_user", "nobody", "--role", "viewer")
    assert not User.objects.filter(username="nobody").exists()


def test_it_rejects_a_weak_password_unless_told_to_allow_it(
    run_command: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DJANGO_USER_PASSWORD", "demo")

    with pytest.raises(CommandError, match="password rejected"):
        run_command("create_user", "demo", "--role", "viewer")
    assert not User.objects.filter(username="demo").exists()

    run_command("create_user", "demo", "--role", "viewer", "--allow-weak-password")
    assert authenticate(username="demo", password="demo") is not None


def test_it_rejects_an_unknown_role(run_command: Callable[..., list[str]]) -> None:
    with pytest.raises(CommandError):
        run_command("create_user", "x", "--role", "superhero")
