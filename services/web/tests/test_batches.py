"""CSV batches (/batches/): validation against the model, publishing chunks, results CSV, permissions."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from celery import Celery
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from kombu import Connection

from config.celery_app import create_celery
from inference_common.broker import connection_url, transport_options
from inference_common.contract import JOB_CHUNK_TASK, JobChunk, Queues
from inference_common.jobs import encode_outputs
from jobs.csvdata import read_numeric
from jobs.models import Job, JobStatus
from jobs.models import JobChunk as JobChunkRow
from jobs.services import BatchError, publish_chunks, read_batch, resolve_model, results_lines, submit_batch
from registry.models import ModelVersion
from registry.services import register_model

# Uploads are stored: each test gets its own MEDIA_ROOT.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

FEATURES = ["alpha", "beta", "gamma", "delta"]


@pytest.fixture
def binary_model(booster_files: Callable[..., Path], model_store: Path) -> ModelVersion:
    """A registered production binary classifier with named features."""
    path = booster_files("binary", ".json", feature_names=FEATURES)
    return register_model(name="churn", path=path, store=model_store, stage="production").model_version


@pytest.fixture
def multiclass_model(booster_files: Callable[..., Path], model_store: Path) -> ModelVersion:
    """A staging three-class model with named features."""
    path = booster_files("multiclass", ".ubj", feature_names=FEATURES)
    return register_model(name="iris", path=path, store=model_store, stage="staging").model_version


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[Celery, str, Queues]]:
    """A web Celery app on a private file-based broker (the embedded transport of ``make demo``)."""
    url = f"filesystem://{tmp_path / 'broker'}"
    queues = Queues(f"t{uuid.uuid4().hex[:8]}")
    app = create_celery(url, queues.prefix)
    yield app, url, queues
    app.close()


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    """A CSV file's content."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def sample_rows(n: int, seed: int = 1) -> np.ndarray:
    """Rows of random features."""
    return np.random.default_rng(seed).normal(size=(n, len(FEATURES))).astype(np.float32)


def drain(url: str, queue_name: str, queues: Queues) -> list[Any]:
    """Every message waiting in ``queue_name`` on the file broker."""
    from inference_common.broker import task_queues

    queue = next(q for q in task_queues(queues) if q.name == queue_name)
    messages = []
    with Connection(connection_url(url), transport_options=transport_options(url)) as conn:
        bound = queue(conn.channel())
        while (message := bound.get(no_ack=True, accept=["json", "msgpack"])) is not None:
            messages.append(message)
    return messages


# -- validation ------------------------------------------------------------------------------


def test_it_reads_the_model_features_in_model_order_and_keeps_ids(binary_model: ModelVersion) -> None:
    content = csv_bytes(["id", "delta", "extra", "alpha", "gamma", "beta"], [["a1", 4, "x", 1, 3, 2]])

    table = read_batch(io.BytesIO(content), binary_model)

    assert table.columns == FEATURES
    assert table.matrix.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert table.ids == ["a1"]


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (["alpha", "beta", "gamma"], [1, 2, 3], "missing column(s) 'delta'"),
        (FEATURES, [1, "two", 3, 4], "line 2, column 'beta': 'two' is not a number"),
        (FEATURES, [1, 2, "nan", 4], "line 2, column 'gamma': 'nan' is not a finite number"),
        (FEATURES, [1, 2, 3, "inf"], "line 2, column 'delta': 'inf' is not a finite number"),
        (FEATURES, [1, "-1e39", 3, 4], "line 2, column 'beta': '-1e39' is outside the float32 range"),
        (FEATURES, [1, 2, "", 4], "line 2, column 'gamma': the value is empty"),
        (FEATURES, [1, 2, 3], "line 2: 3 values, but the header names 4"),
        (["alpha", "alpha", "beta", "gamma", "delta"], [1, 1, 2, 3, 4], "column 'alpha' appears twice"),
    ],
)
def test_it_refuses_a_file_that_does_not_fit_the_model_and_says_where(
    binary_model: ModelVersion, header: list[str], row: list[Any], message: str
) -> None:
    content = csv_bytes(header, [row])

    with pytest.raises(BatchError) as caught:
        read_batch(io.BytesIO(content), binary_model)

    assert message in str(caught.value)


def test_it_reports_the_first_bad_row_not_the_first_row() -> None:
    content = csv_bytes(FEATURES, [[1, 2, 3, 4], [5, 6, 7, 8], [9, "oops", 11, 12]])

    with pytest.raises(ValueError, match=r"line 4, column 'beta'"):
        read_numeric(io.BytesIO(content), FEATURES)


def test_it_refuses_an_empty_or_header_only_file(binary_model: ModelVersion) -> None:
    with pytest.raises(BatchError, match="empty"):
        read_batch(io.BytesIO(b""), binary_model)
    with pytest.raises(BatchError, match="no data rows"):
        read_batch(io.BytesIO(csv_bytes(FEATURES, [])), binary_model)


def test_it_uses_the_production_version_unless_one_is_named(
    binary_model: ModelVersion, booster_files: Callable[..., Path], model_store: Path
) -> None:
    staging = register_model(
        name="churn", path=booster_files("binary", ".ubj", feature_names=FEATURES, seed=3), store=model_store
    ).model_version

    assert resolve_model("churn") == binary_model
    assert resolve_model("churn", staging.version) == staging
    with pytest.raises(BatchError, match="no version '99'"):
        resolve_model("churn", "99")
    with pytest.raises(BatchError, match="no production version"):
        resolve_model("nonexistent")


# -- submitting and publishing -----------------------------------------------------------------


def test_it_records_the_job_and_publishes_one_valid_chunk_message_per_chunk_after_commit(
    binary_model: ModelVersion,
    broker: tuple[Celery, str, Queues],
    django_capture_on_commit_callbacks: Any,
) -> None:
    app, url, queues = broker
    rows = sample_rows(25)
    table = read_batch(io.BytesIO(csv_bytes(FEATURES, rows.tolist())), binary_model)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = submit_batch(
            model_version=binary_model, table=table, input_name="in.csv", created_by="ana", chunk_rows=10
        )
    # Nothing is published until the job row is committed.
    assert len(callbacks) == 1
    assert drain(url, queues.jobs, queues) == []
    assert publish_chunks(job.id, binary_model, table.matrix.astype(np.float32), 10, app=app)

    job.refresh_from_db()
    assert (job.status, job.n_rows, job.n_chunks, job.chunks_done) == (JobStatus.QUEUED, 25, 3, 0)
    assert (job.api_key, job.input_name, job.created_by) == (None, "in.csv", "ana")
    # The file transport does not keep publish order; the chunk index does.
    messages = sorted(drain(url, queues.jobs, queues), key=lambda m: m.decode()[1]["chunk"]["chunk_index"])
    assert [m.headers["task"] for m in messages] == [JOB_CHUNK_TASK] * 3
    assert [m.headers["id"] for m in messages] == [f"{job.id.hex}-{i}" for i in range(3)]
    chunks = [JobChunk.model_validate(m.decode()[1]["chunk"]) for m in messages]
    # At most 10 rows a chunk, shared evenly; the rows travel as raw float32 bytes in msgpack.
    assert {m.content_type for m in messages} == {"application/x-msgpack"}
    assert [(c.chunk_index, c.row_offset, len(c.matrix())) for c in chunks] == [
        (0, 0, 8),
        (1, 8, 8),
        (2, 16, 9),
    ]
    assert all(c.job_id == job.id and c.model_version_id == binary_model.pk for c in chunks)
    assert all(c.rows is None and c.rows_b64 is None and c.rows_f32 for c in chunks)
    assert np.array_equal(np.concatenate([c.matrix() for c in chunks]), rows.astype(np.float32))


def test_it_marks_the_job_failed_with_a_clear_message_when_the_broker_is_unreachable(
    binary_model: ModelVersion,
) -> None:
    # Port 1 on localhost refuses connections at once.
    app = create_celery("amqp://guest:guest@127.0.0.1:1//", "unreachable")
    table = read_batch(io.BytesIO(csv_bytes(FEATURES, sample_rows(3).tolist())), binary_model)
    job = Job.objects.create(model_version=binary_model, n_rows=3, n_chunks=1, created_by="ana")

    accepted = publish_chunks(job.id, binary_model, table.matrix, 10, app=app)

    job.refresh_from_db()
    assert accepted is False
    assert job.status == JobStatus.FAILED
    assert "message broker is unavailable" in job.error
    assert job.completed_at is not None


# -- results ---------------------------------------------------------------------------------


def store_outputs(
    job: Job,
    booster: xgboost.Booster,
    rows: np.ndarray,
    chunk_rows: int,
    json_chunks: frozenset[int] = frozenset(),
) -> np.ndarray:
    """Write chunk rows the way the worker does (float32 outputs + shape); return the expected outputs.

    Chunks in ``json_chunks`` are stored as workers stored them before ``outputs_f32`` (JSON).
    """
    expected = booster.inplace_predict(rows)
    for index, start in enumerate(range(0, rows.shape[0], chunk_rows)):
        part = expected[start : start + chunk_rows]
        stored = (
            {"outputs": part.reshape(-1).tolist()}
            if index in json_chunks
            else {"outputs_f32": encode_outputs(part)}
        )
        JobChunkRow.objects.create(
            job=job,
            chunk_index=index,
            row_offset=start,
            n_rows=part.shape[0],
            shape=list(part.shape),
            **stored,
        )
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, chunks_done=job.n_chunks)
    job.refresh_from_db()
    return expected


def parse(lines: Iterator[str]) -> list[list[str]]:
    """The CSV rows of a streamed results file."""
    return list(csv.reader(io.StringIO("".join(lines))))


def test_its_results_csv_carries_the_ids_and_equals_the_booster(
    binary_model: ModelVersion, model_store: Path, django_capture_on_commit_callbacks: Any
) -> None:
    rows = sample_rows(7)
    ids = [f"cust-{i}" for i in range(7)]
    content = csv_bytes(["id", *FEATURES], [[i, *r] for i, r in zip(ids, rows.tolist(), strict=True)])
    table = read_batch(io.BytesIO(content), binary_model)
    with django_capture_on_commit_callbacks(execute=False):
        job = submit_batch(
            model_version=binary_model, table=table, input_name="x.csv", created_by="a", chunk_rows=3
        )
    booster = xgboost.Booster(model_file=str(model_store / binary_model.artifact_path))
    expected = store_outputs(job, booster, rows, 3)

    result = parse(results_lines(job))

    assert result[0] == ["id", "prediction"]
    assert [line[0] for line in result[1:]] == ids
    assert np.array_equal(np.asarray([float(line[1]) for line in result[1:]], dtype=np.float32), expected)


def test_its_multiclass_results_have_one_probability_column_per_class_and_row_numbers(
    multiclass_model: ModelVersion, model_store: Path, django_capture_on_commit_callbacks: Any
) -> None:
    rows = sample_rows(5, seed=2)
    table = read_batch(io.BytesIO(csv_bytes(FEATURES, rows.tolist())), multiclass_model)
    with django_capture_on_commit_callbacks(execute=False):
        job = submit_batch(
            model_version=multiclass_model, table=table, input_name="x.csv", created_by="a", chunk_rows=2
        )
    booster = xgboost.Booster(model_file=str(model_store / multiclass_model.artifact_path))
    # The first chunk as a worker stored it before outputs_f32 (JSON): both kinds are read.
    expected = store_outputs(job, booster, rows, 2, json_chunks=frozenset({0}))

    result = parse(results_lines(job))

    assert result[0] == ["row", "p_0", "p_1", "p_2"]
    assert [line[0] for line in result[1:]] == ["1", "2", "3", "4", "5"]
    got = np.asarray([[float(v) for v in line[1:]] for line in result[1:]], dtype=np.float32)
    assert np.array_equal(got, expected)


# -- pages and permissions -------------------------------------------------------------------


def test_a_viewer_sees_batches_but_cannot_start_one(
    client_as: Callable[[str | None], Client], binary_model: ModelVersion
) -> None:
    client = client_as("viewer")
    job = Job.objects.create(model_version=binary_model, n_rows=3, n_chunks=1, created_by="ana")

    assert client.get("/batches/").status_code == 200
    assert client.get(f"/batches/{job.id}/").status_code == 200
    assert client.get("/batches/new/").status_code == 403
    upload = SimpleUploadedFile("b.csv", csv_bytes(FEATURES, [[1, 2, 3, 4]]))
    assert client.post("/batches/new/", {"model_name": "churn", "file": upload}).status_code == 403
    assert Job.objects.count() == 1


def test_a_user_without_a_role_cannot_see_batches(
    client_as: Callable[[str | None], Client], binary_model: ModelVersion
) -> None:
    client = client_as(None)

    assert client.get("/batches/").status_code == 403


def test_an_analyst_uploads_a_batch_and_lands_on_its_page(
    client_as: Callable[[str | None], Client],
    binary_model: ModelVersion,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_as("analyst")
    assert client.get("/batches/new/").status_code == 200
    upload = SimpleUploadedFile("scores.csv", csv_bytes(FEATURES, sample_rows(4).tolist()))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/batches/new/", {"model_name": "churn", "version": "", "file": upload})

    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/batches/{job.id}/"
    assert (job.input_name, job.created_by, job.n_rows, job.model_version) == (
        "scores.csv",
        "analyst-user",
        4,
        binary_model,
    )
    assert len(callbacks) == 1
    page = client.get(f"/batches/{job.id}/")
    assert b'http-equiv="refresh"' in page.content


def test_the_form_shows_the_first_bad_cell_and_creates_nothing(
    client_as: Callable[[str | None], Client], binary_model: ModelVersion
) -> None:
    client = client_as("analyst")
    upload = SimpleUploadedFile("bad.csv", csv_bytes(FEATURES, [[1, 2, 3, 4], [1, 2, "x", 4]]))

    response = client.post("/batches/new/", {"model_name": "churn", "file": upload})

    assert response.status_code == 200
    assert "line 3, column &#x27;gamma&#x27;" in response.content.decode()
    assert Job.objects.count() == 0


def test_the_form_refuses_a_file_over_the_upload_limit(
    client_as: Callable[[str | None], Client], binary_model: ModelVersion, settings: Any
) -> None:
    settings.UPLOAD_MAX_MB = 1
    client = client_as("analyst")
    big = csv_bytes(FEATURES, [[1.123456789, 2.123456789, 3.123456789, 4.123456789]] * 30000)
    assert len(big) > 1024 * 1024

    response = client.post(
        "/batches/new/", {"model_name": "churn", "file": SimpleUploadedFile("big.csv", big)}
    )

    assert "larger than 1 MB" in response.content.decode()
    assert Job.objects.count() == 0


def test_results_download_only_once_the_job_succeeded(
    client_as: Callable[[str | None], Client], binary_model: ModelVersion, model_store: Path
) -> None:
    client = client_as("viewer")
    rows = sample_rows(3)
    job = Job.objects.create(model_version=binary_model, n_rows=3, n_chunks=1, created_by="ana")
    assert client.get(f"/batches/{job.id}/results.csv").status_code == 404

    booster = xgboost.Booster(model_file=str(model_store / binary_model.artifact_path))
    store_outputs(job, booster, rows, 10)
    response = client.get(f"/batches/{job.id}/results.csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[0] == "row,prediction"
    assert len(body.splitlines()) == 4
    status = client.get(f"/batches/{job.id}/status.json").json()
    assert (status["status"], status["chunks_done"], status["n_chunks"]) == ("succeeded", 1, 1)
