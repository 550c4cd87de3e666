"""Response cache policies: the model page, the admin, the command, audit events and invalidation.

The api reads ``response_cache_policies`` (its columns are checked with the
rest of the contract in test_schema.py); what the web tier owns is who may
change a policy, that every change is audited, and that every change of the
versions serving a name bumps its generation (which the api keys entries by).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from predictions.models import PredictionRecord
from registry.models import ModelVersion
from registry.services import rollback, set_stage
from responsecache.models import ResponseCachePolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def churn(make_version: Callable[..., ModelVersion]) -> dict[str, ModelVersion]:
    """churn v1 in production and v2, v3 in staging."""
    return {
        version: make_version("churn", version, "production" if version == "1" else "staging")
        for version in "123"
    }


def _policy(**fields: object) -> ResponseCachePolicy:
    return ResponseCachePolicy.objects.create(model_name="churn", **fields)


def _generation() -> int:
    return ResponseCachePolicy.objects.get(model_name="churn").generation


def _actions() -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(object_type="responsecache.responsecachepolicy")
        .order_by("id")
        .values_list("action", "source")
    )


# -- the model page --------------------------------------------------------------------
def test_an_admin_turns_the_cache_on_from_the_model_page(client_as, churn) -> None:
    client = client_as("admin")
    detail = reverse("registry:detail", args=["churn"])
    assert b"Off: every request is predicted by a worker." in client.get(detail).content

    response = client.post(
        reverse("registry:cache", args=["churn"]), {"enabled": "on", "ttl_s": "120", "max_entries": "500"}
    )

    assert response.status_code == 302
    assert response["Location"] == detail
    policy = ResponseCachePolicy.objects.get(model_name="churn")
    assert (policy.enabled, policy.ttl_s, policy.max_entries, policy.generation) == (True, 120, 500, 0)
    assert policy.updated_by == "admin-user"
    assert b"for 120 s, up to 500 answers" in client.get(detail).content
    event = AuditEvent.objects.get(action="response_cache_policy.create")
    assert (event.actor, event.source) == ("admin-user", "web")
    assert event.detail == {"model_name": "churn", "enabled": True, "ttl_s": 120, "max_entries": 500}


def test_turning_it_off_is_a_change_of_the_same_policy(client_as, churn) -> None:
    _policy()
    client = client_as("admin")

    client.post(reverse("registry:cache", args=["churn"]), {"ttl_s": "300", "max_entries": "10000"})

    assert ResponseCachePolicy.objects.get().enabled is False
    assert _actions() == [("response_cache_policy.change", "web")]


@pytest.mark.parametrize(
    ("field", "value"),
    [("ttl_s", "0"), ("ttl_s", str(31 * 24 * 3600)), ("max_entries", "0"), ("max_entries", "1000001")],
)
def test_it_refuses_a_ttl_or_size_out_of_range(client_as, churn, field: str, value: str) -> None:
    data = {"enabled": "on", "ttl_s": "60", "max_entries": "10", field: value}

    response = client_as("admin").post(reverse("registry:cache", args=["churn"]), data)

    assert response.status_code == 400
    assert not ResponseCachePolicy.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "analyst", "reviewer"])
def test_other_roles_see_the_policy_but_cannot_change_or_clear_it(client_as, churn, role: str) -> None:
    _policy(ttl_s=60)
    client = client_as(role)
    page = client.get(reverse("registry:cache", args=["churn"]))
    assert page.status_code == 200
    assert b"60 s" in page.content
    assert b"Clear cached answers" not in page.content

    assert (
        client.post(reverse("registry:cache", args=["churn"]), {"ttl_s": "1", "max_entries": "1"}).status_code
        == 403
    )
    assert client.post(reverse("registry:cache_clear", args=["churn"])).status_code == 403
    assert (ResponseCachePolicy.objects.get().ttl_s, _generation()) == (60, 0)


def test_an_unknown_model_has_no_cache_page(client_as) -> None:
    assert client_as("admin").get(reverse("registry:cache", args=["nope"])).status_code == 404


def test_clearing_starts_a_new_generation_and_is_audited(client_as, churn) -> None:
    _policy()

    response = client_as("admin").post(reverse("registry:cache_clear", args=["churn"]))

    assert response.status_code == 302
    assert _generation() == 1
    event = AuditEvent.objects.get(action="response_cache.clear")
    assert (event.source, event.detail) == ("web", {"model_name": "churn", "generation": 1})


# -- invalidation by the versions that serve the name ----------------------------------------------
def test_every_stage_change_of_the_name_starts_a_new_generation(churn) -> None:
    _policy()
    other = ResponseCachePolicy.objects.create(model_name="other")
    steps = [
        lambda: set_stage(churn["2"], "canary", traffic_percent=10),
        lambda: set_stage(churn["3"], "shadow"),
        # Promoting archives the production version too: two rows move, two bumps.
        lambda: set_stage(churn["2"], "production"),
        lambda: set_stage(churn["3"], "production"),
        lambda: rollback("churn"),
        lambda: set_stage(churn["2"], "archived"),
    ]
    generations = []
    for step in steps:
        step()
        generations.append(_generation())

    assert generations == [1, 2, 4, 6, 8, 9]
    other.refresh_from_db()
    assert other.generation == 0, "other model names keep their answers"


def _canary_twice(churn: dict[str, ModelVersion]) -> None:
    with transaction.atomic():
        set_stage(churn["2"], "canary", traffic_percent=10)
        # A second canary is refused by the database; the whole change rolls back.
        ModelVersion.objects.filter(pk=churn["3"].pk).update(stage="canary")


def test_a_failed_stage_change_leaves_the_generation_alone(churn) -> None:
    _policy()
    with pytest.raises(IntegrityError):
        _canary_twice(churn)
    assert _generation() == 0


def test_a_promotion_from_the_model_page_invalidates(client_as, churn) -> None:
    _policy()

    client_as("admin").post(reverse("registry:stage", args=["churn", "2"]), {"stage": "production"})

    assert ModelVersion.objects.get(name="churn", stage="production").version == "2"
    assert _generation() == 2


def test_stage_changes_of_a_name_without_a_policy_need_none(churn) -> None:
    set_stage(churn["2"], "production")
    assert not ResponseCachePolicy.objects.exists()


# -- the admin -----------------------------------------------------------------------------
def test_the_admin_creates_changes_clears_and_deletes_policies_with_audit_events(
    admin_client: Client, churn
) -> None:
    url = "/admin/responsecache/responsecachepolicy/"
    response = admin_client.post(
        f"{url}add/", {"model_name": "churn", "enabled": "on", "ttl_s": "30", "max_entries": "7"}
    )
    assert response.status_code == 302
    policy = ResponseCachePolicy.objects.get()
    assert (policy.ttl_s, policy.max_entries) == (30, 7)
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(f"{url}{policy.pk}/change/").status_code == 200

    admin_client.post(f"{url}{policy.pk}/change/", {"enabled": "on", "ttl_s": "45", "max_entries": "7"})
    admin_client.post(url, {"action": "clear_answers", "_selected_action": [policy.pk]})
    policy.refresh_from_db()
    assert (policy.ttl_s, policy.generation) == (45, 1)
    admin_client.post(f"{url}{policy.pk}/delete/", {"post": "yes"})

    assert not ResponseCachePolicy.objects.exists()
    assert _actions() == [
        ("response_cache_policy.create", "admin"),
        ("response_cache_policy.change", "admin"),
        ("response_cache.clear", "admin"),
        ("response_cache_policy.delete", "admin"),
    ]


def test_the_admin_refuses_a_policy_for_an_unregistered_model(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/responsecache/responsecachepolicy/add/",
        {"model_name": "ghost", "enabled": "on", "ttl_s": "30", "max_entries": "7"},
    )
    assert response.status_code == 200
    assert b"No model named" in response.content
    assert not ResponseCachePolicy.objects.exists()


def test_staff_without_the_promote_permission_only_view_policies_in_the_admin(login, churn) -> None:
    _policy()
    client = Client()
    user: User = login(client, "viewer")
    user.is_staff = True
    user.save()
    url = "/admin/responsecache/responsecachepolicy/"
    assert client.get(url).status_code == 200
    assert client.get(f"{url}add/").status_code == 403
    client.post(url, {"action": "clear_answers", "_selected_action": [ResponseCachePolicy.objects.get().pk]})
    assert _generation() == 0


# -- the command ---------------------------------------------------------------------------------
def test_the_command_turns_the_cache_on_changes_it_clears_it_and_turns_it_off(run_command, churn) -> None:
    assert run_command("set_response_cache", "--name", "churn") == [
        "churn: response cache on, TTL 300 s, up to 10000 answers, generation 0"
    ]
    assert run_command(
        "set_response_cache", "--name", "churn", "--ttl-s", "60", "--max-entries", "5", "--clear"
    ) == ["churn: response cache on, TTL 60 s, up to 5 answers, generation 1"]
    assert run_command("set_response_cache", "--name", "churn", "--disable") == [
        "churn: response cache off (generation 1)"
    ]
    policy = ResponseCachePolicy.objects.get()
    assert (policy.enabled, policy.ttl_s, policy.max_entries) == (False, 60, 5)
    assert [action for action, source in _actions() if source == "cli"] == [
        "response_cache_policy.create",
        "response_cache_policy.change",
        "response_cache.clear",
        "response_cache_policy.change",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "ghost"], "no model named 'ghost'"),
        (["--name", "churn", "--ttl-s", "0"], "ttl_s"),
        (["--name", "churn", "--max-entries", "2000000"], "max_entries"),
    ],
)
def test_the_command_refuses_unknown_models_and_bad_values(
    run_command, churn, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        run_command("set_response_cache", *args)
    assert not ResponseCachePolicy.objects.exists()


# -- the audit log marks cache hits --------------------------------------------------------------------
def test_the_audit_log_marks_and_filters_cache_hits(client_as, churn, make_record) -> None:
    make_record(churn["1"], "from-worker")
    make_record(churn["1"], "from-cache", cache_hit=True, batch_size=0, predict_ms=0.0)
    client = client_as("admin")

    listing = client.get(reverse("predictions:list")).content.decode()
    cached_only = client.get(reverse("predictions:list"), {"answered_by": "cache"}).content.decode()
    workers_only = client.get(reverse("predictions:list"), {"answered_by": "worker"}).content.decode()
    detail = client.get(reverse("predictions:detail", args=["from-cache"])).content.decode()
    export = client.get(reverse("predictions:export"), {"answered_by": "cache"})

    assert listing.count("cache hit</span>") == 1
    assert "from-cache" in cached_only
    assert "from-worker" not in cached_only
    assert "from-worker" in workers_only
    assert "from-cache" not in workers_only
    assert "response cache: no worker predicted this request" in detail
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert lines[0].endswith(",cache_hit")
    assert len(lines) == 2
    assert lines[1].endswith(",True")


def test_rows_written_without_the_column_are_worker_answers(churn) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO prediction_records (request_id, model_version_id, protocol, n_rows, "
            "inputs_digest, latency_ms, predict_ms, batch_size, device, status) "
            "VALUES ('old', %s, 'v1', 1, '', 1, 1, 1, 'cpu', 'ok')",
            [churn["1"].pk],
        )
    assert PredictionRecord.objects.get(request_id="old").cache_hit is False
