"""The API key pages: the raw key is shown once, edits and revocations are audited."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import issue_key
from audit.models import AuditEvent
from inference_common.keys import hash_key, parse_prefix

pytestmark = pytest.mark.django_db

RAW_KEY = re.compile(r"ipk_[0-9a-f]+_[A-Za-z0-9_-]+")


@pytest.fixture
def api_key() -> ApiKey:
    """An active key created on the command line."""
    return issue_key(name="ci", scopes=["predict"], rate_limit_per_minute=60, created_by="cli:ops").api_key


def test_it_lists_keys_with_scopes_limits_and_last_use(
    login: Callable[..., User], client: Client, api_key: ApiKey
) -> None:
    login(client, "admin")

    page = client.get("/keys/").content.decode()

    assert "ci" in page
    assert f"ipk_{api_key.prefix}_" in page
    assert "60/min" in page
    assert "cli:ops" in page
    assert "never" in page
    assert api_key.key_hash not in page


def test_it_hides_revoked_keys_unless_asked(
    login: Callable[..., User], client: Client, api_key: ApiKey
) -> None:
    api_key.revoke()
    login(client, "admin")

    assert api_key.prefix not in client.get("/keys/").content.decode()
    assert api_key.prefix in client.get("/keys/?revoked=1").content.decode()


def test_it_shows_the_raw_key_once_and_stores_only_its_digest(
    login: Callable[..., User], client: Client
) -> None:
    login(client, "admin", "root")

    response = client.post(
        "/keys/new/", {"name": "batch bot", "scopes": ["jobs"], "rate_limit_per_minute": "0"}
    )

    assert response.status_code == 200
    raw = RAW_KEY.search(response.content.decode())
    assert raw is not None
    stored = ApiKey.objects.get(prefix=parse_prefix(raw.group()))
    assert stored.key_hash == hash_key(raw.group())
    assert (stored.name, stored.scopes, stored.rate_limit_per_minute, stored.created_by) == (
        "batch bot",
        ["jobs"],
        0,
        "root",
    )
    assert "no-store" in response["Cache-Control"]
    # Nothing kept it for a later page: not the session, not the messages, not the list.
    later = client.get("/keys/").content.decode()
    assert raw.group() not in later
    assert all(raw.group() not in str(value) for value in client.session.values())
    event = AuditEvent.objects.get(action="key.create")
    assert (event.actor, event.source) == ("root", "web")
    assert raw.group() not in str(event.detail)
    assert stored.key_hash not in str(event.detail)


@pytest.mark.parametrize(
    "data",
    [
        {"name": "x", "rate_limit_per_minute": "10"},
        {"name": "x", "scopes": ["admin"], "rate_limit_per_minute": "10"},
        {"name": "x", "scopes": ["predict"], "rate_limit_per_minute": "-1"},
        {"name": "  ", "scopes": ["predict"], "rate_limit_per_minute": "10"},
    ],
)
def test_it_refuses_an_invalid_key(
    login: Callable[..., User], client: Client, data: dict[str, object]
) -> None:
    login(client, "admin")

    response = client.post("/keys/new/", data)

    assert response.status_code == 400
    assert not ApiKey.objects.exists()
    assert RAW_KEY.search(response.content.decode()) is None


def test_a_viewer_cannot_see_or_create_keys(login: Callable[..., User], client: Client) -> None:
    login(client, "viewer")

    assert client.get("/keys/").status_code == 403
    assert client.get("/keys/new/").status_code == 403
    response = client.post("/keys/new/", {"name": "x", "scopes": ["predict"], "rate_limit_per_minute": "1"})
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_it_edits_scopes_and_rate_limit_with_an_audit_event(
    login: Callable[..., User], client: Client, api_key: ApiKey
) -> None:
    login(client, "admin", "root")

    response = client.post(
        f"/keys/{api_key.pk}/edit/",
        {"name": "ci", "scopes": ["predict", "jobs"], "rate_limit_per_minute": "5"},
    )

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert (api_key.scopes, api_key.rate_limit_per_minute) == (["jobs", "predict"], 5)
    event = AuditEvent.objects.get(action="key.update")
    assert event.detail["changes"] == {
        "scopes": {"from": ["predict"], "to": ["jobs", "predict"]},
        "rate_limit_per_minute": {"from": 60, "to": 5},
    }
    assert (event.actor, event.source) == ("root", "web")


def test_an_edit_that_changes_nothing_is_not_audited(
    login: Callable[..., User], client: Client, api_key: ApiKey
) -> None:
    login(client, "admin")

    client.post(
        f"/keys/{api_key.pk}/edit/", {"name": "ci", "scopes": ["predict"], "rate_limit_per_minute": "60"}
    )

    assert not AuditEvent.objects.filter(action="key.update").exists()


def test_it_asks_before_revoking_and_revokes_on_post(
    login: Callable[..., User], client: Client, api_key: ApiKey
) -> None:
    login(client, "admin", "root")

    confirm = client.get(f"/keys/{api_key.pk}/revoke/")
    api_key.refresh_from_db()
    assert confirm.status_code == 200
    assert api_key.revoked is False
    assert "csrfmiddlewaretoken" in confirm.content.decode()

    response = client.post(f"/keys/{api_key.pk}/revoke/")

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked is True
    assert api_key.revoked_at is not None
    event = AuditEvent.objects.get(action="key.revoke")
    assert (event.actor, event.source, event.object_id) == ("root", "web", str(api_key.pk))


def test_revoking_twice_keeps_the_first_time_and_one_event(
    login: Callable[..., User], client: Client, api_key: ApiKey
) -> None:
    login(client, "admin")
    client.post(f"/keys/{api_key.pk}/revoke/")
    first = ApiKey.objects.get(pk=api_key.pk).revoked_at

    client.post(f"/keys/{api_key.pk}/revoke/")

    assert ApiKey.objects.get(pk=api_key.pk).revoked_at == first
    assert AuditEvent.objects.filter(action="key.revoke").count() == 1


@pytest.mark.parametrize("role", ["viewer", "analyst", "reviewer"])
def test_only_admins_revoke_keys(
    login: Callable[..., User], client: Client, api_key: ApiKey, role: str
) -> None:
    login(client, role)

    assert client.post(f"/keys/{api_key.pk}/revoke/").status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked is False


def test_forms_carry_a_csrf_token_and_are_enforced(login: Callable[..., User], api_key: ApiKey) -> None:
    client = Client(enforce_csrf_checks=True)
    login(client, "admin")

    form = client.get("/keys/new/").content.decode()
    refused = client.post(f"/keys/{api_key.pk}/revoke/")

    assert "csrfmiddlewaretoken" in form
    assert refused.status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked is False
