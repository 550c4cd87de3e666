"""Every change to models and keys leaves an audit event, whichever door it came through."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import issue_key, revoke_key, update_key
from audit.models import AuditEvent
from inference_common.keys import parse_prefix
from registry.models import ModelVersion
from registry.services import register_model, set_stage

pytestmark = pytest.mark.django_db


def events() -> list[tuple[str, str, str]]:
    """(action, actor, source) of every event, oldest first."""
    return list(AuditEvent.objects.order_by("id").values_list("action", "actor", "source"))


# Services ------------------------------------------------------------------------


def test_registering_records_the_creator_as_actor_by_default(
    booster_files: Callable[..., Path], model_store: Path
) -> None:
    registration = register_model(
        name="churn", path=booster_files("binary"), store=model_store, created_by="alice"
    )

    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.source) == ("model.register", "alice", "system")
    assert event.object_id == str(registration.model_version.pk)
    assert event.detail["version"] == "1"
    assert event.detail["stage"] == "staging"


def test_a_stage_change_and_its_audit_events_commit_or_fail_together(
    make_version: Callable[..., ModelVersion], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_version("churn", "1", "production")
    candidate = make_version("churn", "2")
    import registry.services

    real_record = registry.services.record
    calls: list[str] = []

    def failing_second_record(*args: object, **kwargs: object) -> AuditEvent:
        # The demotion's event is written, then the promotion's event fails.
        calls.append(str(args[0]))
        if len(calls) == 2:
            raise RuntimeError("audit store unavailable")
        return real_record(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(registry.services, "record", failing_second_record)

    with pytest.raises(RuntimeError):
        set_stage(candidate, "production")

    assert dict(ModelVersion.objects.values_list("version", "stage")) == {"1": "production", "2": "staging"}
    assert not AuditEvent.objects.exists()


def test_key_services_audit_create_update_and_revoke() -> None:
    issued = issue_key(name="ci", scopes=["predict"], rate_limit_per_minute=10, actor="ops", source="web")
    update_key(issued.api_key, rate_limit_per_minute=20, actor="ops", source="web")
    revoke_key(issued.api_key, actor="ops", source="web")

    assert events() == [
        ("key.create", "ops", "web"),
        ("key.update", "ops", "web"),
        ("key.revoke", "ops", "web"),
    ]


# Management commands -------------------------------------------------------------


def test_commands_audit_with_source_cli(
    run_command: Callable[..., list[str]], booster_files: Callable[..., Path], model_store: Path
) -> None:
    run_command("register_model", "--name", "churn", "--file", str(booster_files("binary")))
    run_command("register_model", "--name", "churn", "--file", str(booster_files("binary", seed=1)))
    run_command("set_model_stage", "--name", "churn", "--version", "1", "--stage", "production")
    run_command(
        "set_model_stage", "--name", "churn", "--version", "2", "--stage", "canary", "--traffic-percent", "20"
    )
    raw = run_command("create_api_key", "bot")[-1]
    run_command("revoke_api_key", parse_prefix(raw) or "")

    recorded = events()
    assert [action for action, _, _ in recorded] == [
        "model.register",
        "model.register",
        "model.stage",
        "model.stage",
        "key.create",
        "key.revoke",
    ]
    assert {source for _, _, source in recorded} == {"cli"}
    assert all(actor.startswith("cli:") for _, actor, _ in recorded)
    assert ModelVersion.objects.get(version="2").traffic_percent == 20


def test_the_rollback_command_restores_and_audits(
    make_version: Callable[..., ModelVersion], run_command: Callable[..., list[str]]
) -> None:
    set_stage(make_version("churn", "1"), "production")
    set_stage(make_version("churn", "2"), "production")

    lines = run_command("rollback_model", "--name", "churn")

    assert lines[-1] == "1"
    assert ModelVersion.objects.get(version="1").stage == "production"
    assert AuditEvent.objects.order_by("-id").first().source == "cli"  # type: ignore[union-attr]


# Admin ---------------------------------------------------------------------------


def test_admin_stage_actions_are_audited_as_admin(
    make_version: Callable[..., ModelVersion], admin_client: Client
) -> None:
    make_version("churn", "1", "production")
    candidate = make_version("churn", "2")

    admin_client.post(
        "/admin/registry/modelversion/",
        {"action": "promote_to_production", "_selected_action": [candidate.pk]},
    )
    admin_client.post(
        "/admin/registry/modelversion/", {"action": "archive", "_selected_action": [candidate.pk]}
    )

    assert events() == [
        ("model.stage", "admin", "admin"),
        ("model.stage", "admin", "admin"),
        ("model.stage", "admin", "admin"),
    ]
    assert ModelVersion.objects.get(version="2").stage_changed_by == "admin"


def test_admin_rollback_action_restores_the_previous_production_version(
    make_version: Callable[..., ModelVersion], admin_client: Client
) -> None:
    set_stage(make_version("churn", "1"), "production")
    current = make_version("churn", "2")
    set_stage(current, "production")

    admin_client.post(
        "/admin/registry/modelversion/", {"action": "roll_back", "_selected_action": [current.pk]}
    )

    assert dict(ModelVersion.objects.values_list("version", "stage")) == {"1": "production", "2": "archived"}
    assert AuditEvent.objects.order_by("-id").first().source == "admin"  # type: ignore[union-attr]


def test_admin_edits_of_a_model_version_are_audited(
    make_version: Callable[..., ModelVersion], admin_client: Client
) -> None:
    version = make_version("churn", "1")

    response = admin_client.post(
        f"/admin/registry/modelversion/{version.pk}/change/", {"description": "retrained on March data"}
    )

    assert response.status_code == 302
    event = AuditEvent.objects.get()
    assert (event.action, event.source, event.detail["changed"]) == ("model.update", "admin", ["description"])


def test_admin_key_edits_and_revocations_are_audited(admin_client: Client) -> None:
    api_key = ApiKey.objects.create(name="ci", prefix="abcd1234", key_hash="f" * 64, scopes=["predict"])

    admin_client.post(
        f"/admin/apikeys/apikey/{api_key.pk}/change/",
        {"name": "ci", "scopes": ["predict", "jobs"], "rate_limit_per_minute": "30"},
    )
    admin_client.post("/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [api_key.pk]})

    assert events() == [("key.update", "admin", "admin"), ("key.revoke", "admin", "admin")]
    api_key.refresh_from_db()
    assert api_key.revoked
    assert api_key.rate_limit_per_minute == 30


def test_admin_cannot_delete_versions_keys_or_events(
    make_version: Callable[..., ModelVersion], admin_client: Client
) -> None:
    version = make_version("churn", "1")
    api_key = ApiKey.objects.create(name="ci", prefix="abcd1234", key_hash="f" * 64, scopes=["predict"])
    set_stage(version, "archived")
    event = AuditEvent.objects.get()

    urls = [
        f"/admin/registry/modelversion/{version.pk}/delete/",
        f"/admin/apikeys/apikey/{api_key.pk}/delete/",
        f"/admin/audit/auditevent/{event.pk}/delete/",
    ]

    assert [admin_client.get(url).status_code for url in urls] == [403, 403, 403]
