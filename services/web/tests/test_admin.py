"""The admin: every model is browsable; keys and records cannot be created or edited there."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from django.test import Client

from apikeys.models import ApiKey
from inference_common.jobs import encode_outputs
from jobs.models import Job, JobChunk
from predictions.models import PredictionRecord
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_version(make_version: Callable[..., ModelVersion]) -> ModelVersion:
    """A registered version (no artifact needed for the admin)."""
    return make_version("churn", "1")


@pytest.fixture
def api_key() -> ApiKey:
    """A stored key with a recognisable hash."""
    return ApiKey.objects.create(name="ci", prefix="abcd1234", key_hash="f" * 64, scopes=["predict"])


@pytest.fixture
def job(model_version: ModelVersion, api_key: ApiKey) -> Job:
    """A running job with one stored chunk and one audit row."""
    job = Job.objects.create(
        model_version=model_version, api_key=api_key, n_rows=2, n_chunks=2, status="running"
    )
    JobChunk.objects.create(job=job, chunk_index=0, row_offset=0, n_rows=1, outputs=[0.5], shape=[1])
    PredictionRecord.objects.create(
        request_id="r1",
        model_version=model_version,
        api_key=api_key,
        job=job,
        protocol="v2",
        n_rows=1,
        inputs_digest="0" * 64,
        latency_ms=1.0,
        predict_ms=0.5,
        batch_size=1,
        device="cpu",
        status="ok",
    )
    return job


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/registry/modelversion/",
        "/admin/apikeys/apikey/",
        "/admin/predictions/predictionrecord/",
        "/admin/jobs/job/",
        "/admin/jobs/jobchunk/",
    ],
)
def test_it_lists_every_model(url: str, admin_client: Client, job: Job) -> None:
    assert admin_client.get(url).status_code == 200


def test_it_shows_detail_pages(admin_client: Client, job: Job) -> None:
    record = PredictionRecord.objects.get()
    chunk = JobChunk.objects.get()
    urls = [
        f"/admin/registry/modelversion/{job.model_version_id}/change/",
        f"/admin/apikeys/apikey/{job.api_key_id}/change/",
        f"/admin/predictions/predictionrecord/{record.pk}/change/",
        f"/admin/jobs/job/{job.pk}/change/",
        f"/admin/jobs/jobchunk/{chunk.pk}/change/",
    ]

    assert [admin_client.get(url).status_code for url in urls] == [200] * len(urls)


def test_a_chunk_shows_its_outputs_from_either_column(admin_client: Client, job: Job) -> None:
    stored = JobChunk.objects.create(
        job=job,
        chunk_index=1,
        row_offset=1,
        n_rows=25,
        outputs_f32=encode_outputs(np.full(25, 0.25, dtype=np.float32)),
        shape=[25],
    )
    legacy = JobChunk.objects.get(chunk_index=0)

    legacy_page = admin_client.get(f"/admin/jobs/jobchunk/{legacy.pk}/change/").content.decode()
    stored_page = admin_client.get(f"/admin/jobs/jobchunk/{stored.pk}/change/").content.decode()

    assert "First outputs" in legacy_page
    assert ">0.5<" in legacy_page
    assert "0.25, 0.25" in stored_page
    assert "(25 rows)" in stored_page


def test_it_never_shows_the_key_hash(admin_client: Client, api_key: ApiKey) -> None:
    pages = [
        admin_client.get("/admin/apikeys/apikey/").content,
        admin_client.get(f"/admin/apikeys/apikey/{api_key.pk}/change/").content,
    ]

    assert all(b"f" * 64 not in page for page in pages)


def test_it_sends_key_creation_to_the_command(admin_client: Client) -> None:
    assert admin_client.get("/admin/apikeys/apikey/add/").status_code == 403
    assert b"create_api_key" in admin_client.get("/admin/apikeys/apikey/").content


def test_it_edits_scopes_and_rate_limit_but_not_the_hash(admin_client: Client, api_key: ApiKey) -> None:
    response = admin_client.post(
        f"/admin/apikeys/apikey/{api_key.pk}/change/",
        {"name": "ci", "scopes": ["predict", "jobs"], "rate_limit_per_minute": "30", "key_hash": "0" * 64},
    )

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.scopes == ["jobs", "predict"]
    assert api_key.rate_limit_per_minute == 30
    assert api_key.key_hash == "f" * 64


def test_it_revokes_keys_with_an_action(admin_client: Client, api_key: ApiKey) -> None:
    admin_client.post("/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [api_key.pk]})

    api_key.refresh_from_db()
    assert api_key.revoked is True
    assert api_key.revoked_at is not None


def test_it_promotes_a_version_and_archives_the_old_one(
    admin_client: Client, model_version: ModelVersion
) -> None:
    model_version.stage = "production"
    model_version.save()
    candidate = ModelVersion.objects.create(
        name="churn",
        version="2",
        artifact_path="y.ubj",
        sha256="1" * 64,
        feature_names=["a"],
        n_features=1,
        objective="binary:logistic",
    )

    admin_client.post(
        "/admin/registry/modelversion/",
        {"action": "promote_to_production", "_selected_action": [candidate.pk]},
    )

    assert dict(ModelVersion.objects.values_list("version", "stage")) == {"1": "archived", "2": "production"}


def test_it_keeps_the_audit_log_read_only(admin_client: Client, job: Job) -> None:
    record = PredictionRecord.objects.get()

    add = admin_client.get("/admin/predictions/predictionrecord/add/")
    delete = admin_client.get(f"/admin/predictions/predictionrecord/{record.pk}/delete/")
    change = admin_client.post(
        f"/admin/predictions/predictionrecord/{record.pk}/change/", {"status": "error"}
    )

    assert (add.status_code, delete.status_code, change.status_code) == (403, 403, 403)
    record.refresh_from_db()
    assert record.status == "ok"


def test_it_fails_stuck_jobs_with_an_action(admin_client: Client, job: Job) -> None:
    admin_client.post("/admin/jobs/job/", {"action": "mark_failed", "_selected_action": [str(job.pk)]})

    job.refresh_from_db()
    assert job.status == "failed"
    assert job.completed_at is not None
    assert "admin" in job.error
