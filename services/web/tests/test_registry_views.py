"""The model registry pages: listing, upload, one-click stage changes, roll back and comparison."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from predictions.models import PredictionRecord
from registry.models import ModelVersion
from registry.services import RegistryError, rollback, set_stage

pytestmark = pytest.mark.django_db


def stages(name: str) -> dict[str, str]:
    """Version -> stage of ``name``."""
    return dict(ModelVersion.objects.filter(name=name).values_list("version", "stage"))


# Listing and detail ----------------------------------------------------------


def test_it_lists_versions_with_stage_metrics_and_last_day_requests(
    login: Callable[..., User],
    make_version: Callable[..., ModelVersion],
    make_record: Callable[..., PredictionRecord],
    client: Client,
) -> None:
    login(client, "viewer")
    current = make_version("churn", "1", "production", metrics={"auc": 0.91}, created_by="alice")
    make_version("churn", "2", "canary", traffic_percent=15)
    make_record(current, "r1")
    make_record(current, "r2")
    old = make_record(current, "r3")
    PredictionRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))

    response = client.get("/models/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "churn" in page
    assert "auc=0.91" in page
    assert "alice" in page
    assert "15%" in page
    listed = {v.version: v.requests_24h for m in response.context["models"] for v in m["versions"]}
    assert listed == {"1": 2, "2": 0}


def test_it_shows_stage_actions_only_to_users_who_may_promote(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    make_version("churn", "1", "production")
    make_version("churn", "2")
    login(client, "viewer")
    viewer_page = client.get("/models/churn/").content.decode()
    login(client, "admin")
    admin_page = client.get("/models/churn/").content.decode()

    assert 'data-action="promote"' not in viewer_page
    assert 'data-action="promote"' in admin_page
    assert 'data-action="canary"' in admin_page


def test_it_answers_404_for_an_unknown_model(login: Callable[..., User], client: Client) -> None:
    login(client, "viewer")

    assert client.get("/models/nope/").status_code == 404


# Stage changes -----------------------------------------------------------------


def test_a_viewer_cannot_promote_a_version(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    make_version("churn", "1", "production")
    make_version("churn", "2")
    login(client, "viewer")

    response = client.post("/models/churn/versions/2/stage/", {"stage": "production"})

    assert response.status_code == 403
    assert stages("churn") == {"1": "production", "2": "staging"}
    assert not AuditEvent.objects.exists()


def test_an_admin_promotes_with_one_click_and_the_change_is_audited(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    make_version("churn", "1", "production")
    make_version("churn", "2")
    login(client, "admin", "root")

    response = client.post("/models/churn/versions/2/stage/", {"stage": "production"})

    assert response.status_code == 302
    assert stages("churn") == {"1": "archived", "2": "production"}
    promoted = ModelVersion.objects.get(name="churn", version="2")
    assert promoted.stage_changed_by == "root"
    assert promoted.stage_changed_at is not None
    events = {(e.detail["version"], e.detail["from"], e.detail["to"]): e for e in AuditEvent.objects.all()}
    assert set(events) == {("1", "production", "archived"), ("2", "staging", "production")}
    assert {(e.actor, e.source, e.action) for e in events.values()} == {("root", "web", "model.stage")}


def test_stage_changes_are_post_only(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    make_version("churn", "2")
    login(client, "admin")

    assert client.get("/models/churn/versions/2/stage/?stage=production").status_code == 405
    assert stages("churn") == {"2": "staging"}


def test_a_canary_gets_its_traffic_share_and_replaces_the_previous_canary(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    make_version("churn", "1", "production")
    make_version("churn", "2", "canary", traffic_percent=5)
    make_version("churn", "3")
    login(client, "admin")

    client.post("/models/churn/versions/3/stage/", {"stage": "canary", "traffic_percent": "25"})

    rows = dict(ModelVersion.objects.filter(name="churn").values_list("version", "traffic_percent"))
    assert stages("churn") == {"1": "production", "2": "staging", "3": "canary"}
    assert rows == {"1": 0, "2": 0, "3": 25}
    event = AuditEvent.objects.get(detail__version="3")
    assert (event.detail["to"], event.detail["traffic_percent"]) == ("canary", 25)


@pytest.mark.parametrize("percent", ["", "0", "101"])
def test_it_refuses_a_canary_without_a_valid_percentage(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client, percent: str
) -> None:
    make_version("churn", "3")
    login(client, "admin")

    response = client.post(
        "/models/churn/versions/3/stage/", {"stage": "canary", "traffic_percent": percent}, follow=True
    )

    assert stages("churn") == {"3": "staging"}
    assert "traffic percentage" in response.content.decode()


def test_a_new_shadow_sends_the_old_one_back_to_staging(make_version: Callable[..., ModelVersion]) -> None:
    make_version("churn", "1", "shadow")
    candidate = make_version("churn", "2")

    set_stage(candidate, "shadow", actor="bob")

    assert stages("churn") == {"1": "staging", "2": "shadow"}


def test_promoting_the_canary_ends_the_canary_and_archives_production(
    make_version: Callable[..., ModelVersion],
) -> None:
    make_version("churn", "1", "production")
    canary = make_version("churn", "2", "canary", traffic_percent=30)

    demoted = set_stage(canary, "production")

    assert demoted is not None
    assert demoted.version == "1"
    canary.refresh_from_db()
    assert (canary.stage, canary.traffic_percent) == ("production", 0)
    assert not ModelVersion.objects.filter(stage="canary").exists()


def test_rollback_restores_the_previous_production_version(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    first = make_version("churn", "1")
    second = make_version("churn", "2")
    set_stage(first, "production")
    set_stage(second, "production")
    login(client, "admin", "root")

    page = client.get("/models/churn/").content.decode()
    response = client.post("/models/churn/rollback/", follow=True)

    assert "Roll back to version 1" in page
    assert stages("churn") == {"1": "production", "2": "archived"}
    assert "version 1 is production again" in response.content.decode()
    last = AuditEvent.objects.filter(detail__version="1").order_by("-id").first()
    assert last is not None
    assert last.detail["rollback"] is True
    assert last.actor == "root"


def test_rollback_without_an_earlier_production_version_is_a_clear_error(
    make_version: Callable[..., ModelVersion],
) -> None:
    set_stage(make_version("churn", "1"), "production")

    with pytest.raises(RegistryError, match="no earlier production version"):
        rollback("churn")
    assert stages("churn") == {"1": "production"}


def test_a_viewer_cannot_roll_back(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    first = make_version("churn", "1")
    set_stage(first, "production")
    set_stage(make_version("churn", "2"), "production")
    login(client, "viewer")

    assert client.post("/models/churn/rollback/").status_code == 403
    assert stages("churn") == {"1": "archived", "2": "production"}


# Upload ------------------------------------------------------------------------


def upload(path: Path, name: str | None = None) -> SimpleUploadedFile:
    """An uploaded copy of the file at ``path``."""
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="application/octet-stream")


def test_it_registers_an_uploaded_booster_and_shows_its_feature_names(
    login: Callable[..., User], client: Client, booster_files: Callable[..., Path], model_store: Path
) -> None:
    login(client, "admin", "root")
    path = booster_files("binary", ".ubj", feature_names=["age", "income", "tenure", "plan"])

    response = client.post(
        "/models/upload/",
        {
            "name": "churn",
            "version": "",
            "file": upload(path),
            "description": "first",
            "stage": "production",
            "metrics": '{"auc": 0.93, "logloss": 0.2}',
        },
        follow=True,
    )

    assert response.status_code == 200
    version = ModelVersion.objects.get(name="churn")
    assert (version.version, version.stage, version.created_by) == ("1", "production", "root")
    assert version.feature_names == ["age", "income", "tenure", "plan"]
    assert version.metrics == {"auc": 0.93, "logloss": 0.2}
    assert (model_store / version.artifact_path).is_file()
    assert "age, income, tenure, plan" in response.content.decode()
    event = AuditEvent.objects.get(action="model.register")
    assert (event.actor, event.source, event.detail["stage"]) == ("root", "web", "production")


def test_it_rejects_a_file_that_is_not_a_booster(
    login: Callable[..., User], client: Client, model_store: Path
) -> None:
    login(client, "admin")
    garbage = SimpleUploadedFile("model.json", b'{"not": "a model"}')

    response = client.post("/models/upload/", {"name": "churn", "file": garbage, "stage": "staging"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "not a valid XGBoost model" in page
    assert "model.json" in page
    assert not ModelVersion.objects.exists()


def test_it_rejects_an_unsupported_extension(
    login: Callable[..., User], client: Client, booster_files: Callable[..., Path]
) -> None:
    login(client, "admin")

    response = client.post(
        "/models/upload/",
        {"name": "churn", "file": upload(booster_files("binary"), "model.pkl"), "stage": "staging"},
    )

    assert response.status_code == 400
    assert ".json or .ubj" in response.content.decode()


def test_it_rejects_a_file_over_the_upload_limit(
    login: Callable[..., User], client: Client, booster_files: Callable[..., Path], settings: object
) -> None:
    settings.UPLOAD_MAX_MB = 0  # type: ignore[attr-defined]
    login(client, "admin")

    response = client.post(
        "/models/upload/", {"name": "churn", "file": upload(booster_files("binary")), "stage": "staging"}
    )

    assert response.status_code == 400
    assert "MB limit" in response.content.decode()


@pytest.mark.parametrize("metrics", ["{not json", '["auc"]', '{"auc": "high"}', '{"auc": true}'])
def test_it_rejects_metrics_that_are_not_an_object_of_numbers(
    login: Callable[..., User],
    client: Client,
    booster_files: Callable[..., Path],
    metrics: str,
    model_store: Path,
) -> None:
    login(client, "admin")

    response = client.post(
        "/models/upload/",
        {"name": "churn", "file": upload(booster_files("binary")), "stage": "staging", "metrics": metrics},
    )

    assert response.status_code == 400
    assert not ModelVersion.objects.exists()


def test_it_rejects_a_version_that_exists(
    login: Callable[..., User],
    make_version: Callable[..., ModelVersion],
    client: Client,
    booster_files: Callable[..., Path],
) -> None:
    make_version("churn", "7")
    login(client, "admin")

    response = client.post(
        "/models/upload/",
        {"name": "churn", "version": "7", "file": upload(booster_files("binary")), "stage": "staging"},
    )

    assert response.status_code == 400
    assert "already registered" in response.content.decode()


def test_uploading_into_production_needs_the_promote_permission(
    client: Client, booster_files: Callable[..., Path], model_store: Path
) -> None:
    user = User.objects.create_user("uploader")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_modelversion", "view_modelversion"])
    )
    client.force_login(user)

    response = client.post(
        "/models/upload/", {"name": "churn", "file": upload(booster_files("binary")), "stage": "production"}
    )

    assert response.status_code == 400
    assert not ModelVersion.objects.exists()


def test_a_viewer_cannot_upload(login: Callable[..., User], client: Client) -> None:
    login(client, "viewer")

    assert client.get("/models/upload/").status_code == 403


# Comparison ------------------------------------------------------------------


def test_it_compares_metrics_and_live_traffic_side_by_side(
    login: Callable[..., User],
    make_version: Callable[..., ModelVersion],
    make_record: Callable[..., PredictionRecord],
    client: Client,
) -> None:
    a = make_version("churn", "1", "production", metrics={"auc": 0.9, "logloss": 0.3})
    b = make_version("churn", "2", "staging", metrics={"auc": 0.95, "f1": 0.8})
    for index, latency in enumerate([10.0, 20.0, 30.0, 40.0]):
        make_record(a, f"a{index}", latency_ms=latency, outputs=[0.2])
    make_record(a, "a-err", latency_ms=50.0, status="error", outputs=None)
    make_record(b, "b0", latency_ms=5.0, outputs=[0.6])
    login(client, "viewer")

    response = client.get("/models/churn/compare/?a=1&b=2")

    assert response.status_code == 200
    rows = {row["name"]: row for row in response.context["metric_rows"]}
    assert set(rows) == {"auc", "f1", "logloss"}
    assert rows["auc"]["diff"] == pytest.approx(0.05)
    assert rows["f1"]["diff"] is None
    assert rows["f1"]["a"] is None
    stats_a, stats_b = response.context["stats_a"], response.context["stats_b"]
    assert stats_a.requests == 5
    assert stats_a.p50_ms == pytest.approx(30.0)
    assert stats_a.error_rate == pytest.approx(0.2)
    assert stats_a.mean_score == pytest.approx(0.2)
    assert (stats_b.requests, stats_b.mean_score) == (1, pytest.approx(0.6))
    assert response.context["paired"] is None


def test_it_pairs_shadow_answers_with_the_answers_clients_got(
    login: Callable[..., User],
    make_version: Callable[..., ModelVersion],
    make_record: Callable[..., PredictionRecord],
    client: Client,
) -> None:
    production = make_version("churn", "1", "production")
    shadow = make_version("churn", "2", "shadow")
    # Three identical answers, one within tolerance, one on the other side of 0.5.
    answers = [([0.2], [0.2]), ([0.7], [0.7]), ([0.1, 0.9], [0.1, 0.9]), ([0.3], [0.3000001]), ([0.4], [0.6])]
    for index, (primary, copy) in enumerate(answers):
        make_record(production, f"p{index}", outputs=primary, latency_ms=10.0, route="production")
        make_record(shadow, f"s{index}", outputs=copy, latency_ms=30.0, route="shadow", shadow_of=f"p{index}")
    make_record(shadow, "s-orphan", outputs=[0.5], route="shadow", shadow_of="gone")
    login(client, "viewer")

    response = client.get("/models/churn/compare/?a=1&b=2")

    paired = response.context["paired"]
    assert paired.pairs == 5
    assert paired.compared == 5
    assert paired.agreement == pytest.approx(4 / 5)
    assert paired.mean_abs_diff == pytest.approx((0.1000001 - 0.1 + 0.2) / 5, abs=1e-6)
    assert (paired.primary_p50_ms, paired.shadow_p50_ms) == (10.0, 30.0)
    assert "80.0%" in response.content.decode()


def test_classifiers_agree_when_every_row_gets_the_same_class(
    login: Callable[..., User],
    make_version: Callable[..., ModelVersion],
    make_record: Callable[..., PredictionRecord],
    client: Client,
) -> None:
    production = make_version("iris", "1", "production", objective="multi:softprob", n_outputs=3)
    shadow = make_version("iris", "2", "shadow", objective="multi:softprob", n_outputs=3)
    make_record(production, "p", outputs=[[0.7, 0.2, 0.1]], route="production")
    make_record(shadow, "s", outputs=[[0.6, 0.3, 0.1]], route="shadow", shadow_of="p")
    login(client, "viewer")

    paired = client.get("/models/iris/compare/").context["paired"]

    assert (paired.pairs, paired.agreement) == (1, 1.0)
    assert paired.mean_abs_diff == pytest.approx(0.2 / 3)
