"""The database schema: constraints Django declares, and the contract with the api and worker.

The api and worker use ``inference_common.schema`` through SQLAlchemy. These
tests run their kind of statements against the migrated database, on the
same connection as the test (so the test's transaction still isolates them).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.pool import StaticPool

from apikeys.models import ApiKey
from inference_common import schema
from inference_common.db import insert_ignoring_duplicates
from jobs.models import Job, JobChunk
from predictions.models import PredictionRecord
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


class BorrowedConnection:
    """Django's DBAPI connection with transaction control left to Django.

    SQLAlchemy rolls back on first connect and on check-in; on the borrowed
    connection that would end the test's transaction and let rows leak into
    later tests, so commit, rollback and close do nothing here.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def commit(self) -> None:
        """Leave the transaction to Django."""

    def rollback(self) -> None:
        """Leave the transaction to Django."""

    def close(self) -> None:
        """Leave the connection to Django."""


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A SQLAlchemy engine that runs on the test's own database connection and transaction."""
    connection.ensure_connection()
    borrowed = BorrowedConnection(connection.connection)
    if connection.vendor == "postgresql":
        # hstore set-up wants a real psycopg Connection, and no table uses hstore.
        engine = create_engine(
            "postgresql+psycopg://", creator=lambda: borrowed, poolclass=StaticPool, use_native_hstore=False
        )
    else:
        engine = create_engine("sqlite://", creator=lambda: borrowed, poolclass=StaticPool)
    yield engine
    engine.dispose()


def test_it_allows_only_one_production_version_per_name(make_version: Callable[..., ModelVersion]) -> None:
    make_version("m", "1", "production")
    make_version("m", "2", "staging")
    make_version("m", "3", "staging")
    make_version("other", "1", "production")

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(name="m", version="2").update(stage="production")

    assert ModelVersion.objects.filter(name="m", stage="production").count() == 1


def test_it_rejects_a_second_row_with_the_same_name_and_version(
    make_version: Callable[..., ModelVersion],
) -> None:
    make_version("m", "1")

    with pytest.raises(IntegrityError), transaction.atomic():
        make_version("m", "1")


def test_it_rejects_an_unknown_stage_in_the_database(make_version: Callable[..., ModelVersion]) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make_version("m", "1", "live")


def test_it_protects_model_versions_that_predictions_refer_to(
    make_version: Callable[..., ModelVersion],
) -> None:
    model_version = make_version("m")
    PredictionRecord.objects.create(
        request_id="r1",
        model_version=model_version,
        protocol="v2",
        n_rows=1,
        inputs_digest="0" * 64,
        latency_ms=1.0,
        predict_ms=0.5,
        batch_size=1,
        device="cpu",
        status="ok",
    )

    with pytest.raises(ProtectedError):
        model_version.delete()


def test_it_keeps_predictions_and_jobs_when_their_key_is_deleted(
    make_version: Callable[..., ModelVersion],
) -> None:
    model_version = make_version("m")
    api_key = ApiKey.objects.create(name="k", prefix="abcd1234", key_hash="0" * 64, scopes=["predict"])
    job = Job.objects.create(api_key=api_key, model_version=model_version, n_rows=10, n_chunks=1)
    PredictionRecord.objects.create(
        request_id="r1",
        api_key=api_key,
        model_version=model_version,
        protocol="v1",
        n_rows=1,
        inputs_digest="0" * 64,
        latency_ms=1.0,
        predict_ms=0.5,
        batch_size=1,
        device="cpu",
        status="ok",
    )

    api_key.delete()

    assert PredictionRecord.objects.get(request_id="r1").api_key is None
    job.refresh_from_db()
    assert job.api_key is None


def test_it_fills_database_defaults_on_insert(make_version: Callable[..., ModelVersion]) -> None:
    model_version = make_version("m")
    model_version.refresh_from_db()
    job = Job.objects.create(model_version=model_version, n_rows=5, n_chunks=1)
    job.refresh_from_db()

    assert model_version.created_at is not None
    assert model_version.stage == "staging"
    assert job.status == "queued"
    assert job.chunks_done == 0
    assert job.created_at is not None
    assert job.updated_at is not None


def test_it_has_every_contract_column_with_the_same_nullability(engine: Engine) -> None:
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in schema.metadata.sorted_tables:
            columns = {column["name"]: column for column in inspector.get_columns(table.name)}
            for column in table.columns:
                assert column.name in columns, f"{table.name}.{column.name} is missing"
                assert columns[column.name]["nullable"] == column.nullable, (
                    f"{table.name}.{column.name}: nullable is {columns[column.name]['nullable']}, "
                    f"the contract says {column.nullable}"
                )


def test_it_has_the_contract_column_types_on_postgresql(engine: Engine) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no column types to compare")
    # SQLAlchemy spells PostgreSQL's float8 "FLOAT" when compiling Float().
    aliases = {"FLOAT": "DOUBLE PRECISION"}
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in schema.metadata.sorted_tables:
            reflected = {column["name"]: column["type"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                expected = column.type.compile(dialect=engine.dialect)
                actual = reflected[column.name].compile(dialect=engine.dialect)
                assert aliases.get(expected, expected) == actual, f"{table.name}.{column.name}"


def test_it_accepts_rows_written_the_way_the_api_and_worker_write_them(engine: Engine) -> None:
    now = datetime.now(UTC)
    job_id = uuid.uuid4()
    # Only contract columns, as SQLAlchemy sends them; Django-only columns
    # must be filled by their database defaults.
    with engine.connect() as conn:
        version_id = conn.execute(
            schema.model_versions.insert()
            .values(
                name="m",
                version="1",
                stage="production",
                artifact_path="x.ubj",
                sha256="0" * 64,
                feature_names=["a", "b"],
                n_features=2,
                objective="binary:logistic",
                n_outputs=1,
                created_at=now,
            )
            .returning(schema.model_versions.c.id)
        ).scalar_one()
        key_id = conn.execute(
            schema.api_keys.insert()
            .values(
                name="k",
                prefix="abcd1234",
                key_hash="0" * 64,
                scopes=["predict", "jobs"],
                revoked=False,
                rate_limit_per_minute=60,
            )
            .returning(schema.api_keys.c.id)
        ).scalar_one()
        conn.execute(
            schema.jobs.insert().values(
                id=job_id,
                api_key_id=key_id,
                model_version_id=version_id,
                status="queued",
                n_rows=4,
                n_chunks=2,
                chunks_done=0,
                error="",
                trace_id="a" * 32,
                created_at=now,
                updated_at=now,
            )
        )
        chunk = {
            "job_id": job_id,
            "chunk_index": 0,
            "row_offset": 0,
            "n_rows": 2,
            "outputs": [0.1, 0.9],
            "shape": [2],
            "created_at": now,
        }
        # A redelivered message repeats the insert; the unique key makes it a no-op.
        # (RETURNING tells whether a row was written; rowcount is -1 on psycopg here.)
        inserted = [
            conn.execute(
                insert_ignoring_duplicates(engine, "job_chunks")
                .values(**chunk)
                .returning(schema.job_chunks.c.id)
            ).first()
            is not None
            for _ in range(2)
        ]
        record = {
            "request_id": "req-1",
            "api_key_id": key_id,
            "model_version_id": version_id,
            "job_id": None,
            "protocol": "v2",
            "n_rows": 2,
            "inputs_digest": "1" * 64,
            "outputs": [[0.1], [0.9]],
            "outputs_digest": "2" * 64,
            "latency_ms": 3.5,
            "predict_ms": 0.4,
            "batch_size": 8,
            "device": "cpu",
            "trace_id": "b" * 32,
            "status": "ok",
            "error": "",
            "created_at": now,
        }
        conn.execute(insert_ignoring_duplicates(engine, "prediction_records"), [record, record])

    assert inserted == [True, False]
    model_version = ModelVersion.objects.get(pk=version_id)
    assert (model_version.description, model_version.created_by) == ("", "")
    api_key = ApiKey.objects.get(pk=key_id)
    assert api_key.created_at is not None
    assert api_key.revoked_at is None
    assert api_key.created_by == ""
    job = Job.objects.get(pk=job_id)
    assert job.api_key == api_key
    assert JobChunk.objects.get(job=job).outputs == [0.1, 0.9]
    # Two inserts of the same request id left one audit row.
    prediction = PredictionRecord.objects.get()
    assert prediction.outputs == [[0.1], [0.9]]
    assert prediction.created_at == now
