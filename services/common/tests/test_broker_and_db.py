"""Broker topology/options and database helpers."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError

from inference_common.broker import (
    celery_config,
    connection_url,
    dead_letter_queue,
    is_filesystem,
    task_queues,
    transport_options,
)
from inference_common.contract import JOB_CHUNK_TASK, PREDICT_TASK, Queues
from inference_common.db import (
    PreparedInsert,
    backoff,
    insert_ignoring_duplicates,
    make_engine,
    sqlalchemy_url,
    with_db_retry,
)
from inference_common.schema import jobs, metadata, model_versions, prediction_records


def test_amqp_publishes_with_confirms_and_late_acks():
    config = celery_config("amqp://guest:guest@localhost:5672//", Queues())
    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["task_publish_retry_policy"]["max_retries"] == 2
    assert config["task_routes"][PREDICT_TASK]["queue"] == "inference.predict"
    assert config["task_routes"][JOB_CHUNK_TASK]["queue"] == "inference.jobs"
    assert config["worker_enable_remote_control"] is True


def test_work_queues_are_durable_and_dead_letter(tmp_path):
    for queue in task_queues(Queues("p")):
        assert queue.durable
        assert queue.queue_arguments == {
            "x-dead-letter-exchange": "p.dlx",
            "x-dead-letter-routing-key": "p.dlq",
        }


def test_the_file_broker_keeps_everything_in_its_folder(tmp_path):
    url = f"filesystem://{tmp_path}/broker"
    options = transport_options(url)
    assert options["data_folder_in"] == options["data_folder_out"] == f"{tmp_path}/broker"
    assert options["control_folder"] == f"{tmp_path}/broker/control"
    assert (tmp_path / "broker").is_dir()
    assert connection_url(url) == "filesystem://"
    assert celery_config(url, Queues())["worker_enable_remote_control"] is False


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_urls_translate_for_sqlalchemy(url, expected):
    assert sqlalchemy_url(url) == expected


def test_an_unsupported_database_is_refused():
    with pytest.raises(ValueError, match="mysql"):
        sqlalchemy_url("mysql://u@h/d")


def _audit_row(request_id: str, now: datetime) -> dict:
    return {
        "request_id": request_id,
        "model_version_id": 1,
        "job_id": uuid.UUID(int=7),
        "protocol": "v1",
        "n_rows": 1,
        "inputs_digest": "",
        "outputs": [[0.25, 0.75]],
        "outputs_digest": "",
        "latency_ms": 1.0,
        "predict_ms": 0.1,
        "batch_size": 1,
        "device": "cpu",
        "trace_id": "",
        "status": "ok",
        "error": "",
        "created_at": now,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_engine(request, tmp_path):
    """An engine on a fresh database with the schema, one registered version and one job."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite3")
        yield _with_version_and_job(engine)
        return
    admin_url = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"common_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine = make_engine(admin_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield _with_version_and_job(engine)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name}")
        admin.dispose()


def _with_version_and_job(engine):
    metadata.create_all(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            model_versions.insert().values(
                id=1,
                name="m",
                version="1",
                stage="production",
                artifact_path="a",
                sha256="0" * 64,
                feature_names=["a"],
                n_features=1,
                objective="reg:squarederror",
                n_outputs=1,
                created_at=now,
            )
        )
        conn.execute(
            jobs.insert().values(
                id=uuid.UUID(int=7),
                model_version_id=1,
                status="queued",
                n_rows=1,
                n_chunks=1,
                chunks_done=0,
                error="",
                trace_id="",
                created_at=now,
                updated_at=now,
            )
        )
    return engine


def test_prepared_insert_stores_what_sqlalchemy_reads_back_and_skips_duplicates(audit_engine):
    now = datetime.now(UTC)
    insert = PreparedInsert(audit_engine, "prediction_records", list(_audit_row("r", now)))
    with audit_engine.begin() as conn:
        insert.execute(conn, [_audit_row("r1", now), _audit_row("r2", now)])
        # A redelivered batch: the existing row is skipped, the new one stored.
        insert.execute(conn, [_audit_row("r2", now), _audit_row("r3", now)])
        insert.execute(conn, [])
    with audit_engine.connect() as conn:
        stored = conn.execute(select(prediction_records).order_by(prediction_records.c.request_id)).all()
    assert [row.request_id for row in stored] == ["r1", "r2", "r3"]
    assert stored[0].outputs == [[0.25, 0.75]]
    assert stored[0].job_id == uuid.UUID(int=7)
    # SQLite hands back a naive datetime (its stored UTC), PostgreSQL an aware one.
    created = stored[0].created_at
    assert (created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)) == now


@pytest.mark.parametrize("n_rows", [1, 5, 131])
def test_prepared_insert_stores_writes_of_any_size_once(audit_engine, n_rows):
    """Every row once, with its own values, also when a write repeats a row of its own."""
    now = datetime.now(UTC)
    insert = PreparedInsert(audit_engine, "prediction_records", list(_audit_row("r", now)))
    rows = [{**_audit_row(f"r{index:04d}", now), "latency_ms": float(index)} for index in range(n_rows)]
    with audit_engine.begin() as conn:
        insert.execute(conn, rows)
        # Redelivered rows again, one of them twice in the same write, with one new row.
        insert.execute(conn, [rows[0], rows[-1], rows[-1], _audit_row("new", now)])
    with audit_engine.connect() as conn:
        stored = conn.execute(select(prediction_records).order_by(prediction_records.c.request_id)).all()
    assert [row.request_id for row in stored] == ["new", *(row["request_id"] for row in rows)]
    assert [row.latency_ms for row in stored[1:]] == [float(index) for index in range(n_rows)]


def test_duplicate_rows_are_skipped_not_failed(tmp_path):
    engine = _with_version_and_job(make_engine(f"sqlite:///{tmp_path}/db.sqlite3"))
    row = _audit_row("r1", datetime.now(UTC))
    statement = insert_ignoring_duplicates(engine, "prediction_records")
    with engine.begin() as conn:
        conn.execute(statement, [row])
        conn.execute(statement, [row])
        assert conn.execute(select(func.count()).select_from(prediction_records)).scalar() == 1


def test_amqp_urls_pass_through_and_keep_heartbeats():
    url = "amqp://u:p@rabbit:5672/vh"
    config = celery_config(url, Queues("x"))
    assert config["broker_url"] == url
    assert config["broker_heartbeat"] == 30
    assert config["task_default_queue"] == "x.predict"
    # msgpack for job chunks (raw row bytes); never pickle, which would run what a message says.
    assert config["accept_content"] == ["json", "msgpack"]
    assert config["task_serializer"] == "json"
    assert config["task_ignore_result"] is True
    assert [queue.name for queue in config["task_queues"]] == ["x.predict", "x.jobs"]


def test_the_file_broker_has_no_heartbeat_and_polls_quickly(tmp_path):
    config = celery_config(f"filesystem://{tmp_path}/b", Queues())
    assert config["broker_url"] == "filesystem://"
    assert config["broker_heartbeat"] == 0
    assert config["broker_transport_options"]["polling_interval"] == 0.02
    assert config["broker_transport_options"]["store_processed"] is False
    assert is_filesystem(f"filesystem://{tmp_path}/b")
    assert not is_filesystem("amqp://localhost//")


def test_work_queues_route_to_themselves_on_a_durable_direct_exchange():
    predict, jobs = task_queues(Queues("p"))
    assert (predict.name, predict.routing_key) == ("p.predict", "p.predict")
    assert (jobs.name, jobs.routing_key) == ("p.jobs", "p.jobs")
    for queue in (predict, jobs):
        assert queue.exchange.name == "p"
        assert queue.exchange.type == "direct"
        assert queue.exchange.durable


def test_the_dead_letter_queue_is_bound_to_the_dead_letter_exchange():
    queue = dead_letter_queue(Queues("p"))
    assert queue.name == "p.dlq"
    assert queue.durable
    assert (queue.exchange.name, queue.exchange.type) == ("p.dlx", "direct")
    assert queue.routing_key == "p.dlq"
    # It must not dead-letter into itself.
    assert not queue.queue_arguments


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("pgsql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_other_database_url_spellings_translate(url, expected):
    assert sqlalchemy_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/d", "oracle://h/d", "postgresql+psycopg2://u@h/d", ""])
def test_it_refuses_database_urls_it_cannot_serve(url):
    with pytest.raises(ValueError, match="unsupported DATABASE_URL scheme"):
        sqlalchemy_url(url)


def test_a_sqlite_engine_uses_wal_and_waits_for_locks(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite3")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


def test_postgres_inserts_skip_conflicts_too():
    from sqlalchemy import create_engine

    # Creating an engine does not connect; only the dialect matters here.
    engine = create_engine("postgresql+psycopg://u@localhost/d")
    statement = insert_ignoring_duplicates(engine, "job_chunks")
    assert str(statement.compile(dialect=engine.dialect)).endswith("ON CONFLICT DO NOTHING")


def test_insert_ignoring_duplicates_needs_a_known_table(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite3")
    with pytest.raises(KeyError):
        insert_ignoring_duplicates(engine, "no_such_table")


def test_a_briefly_unreachable_database_is_retried():
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return "written"

    assert with_db_retry(flaky, (0, 0, 0)) == "written"
    assert len(attempts) == 3


def test_a_database_that_stays_down_raises_after_the_last_attempt():
    attempts = []

    def down():
        attempts.append(1)
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    with pytest.raises(OperationalError):
        with_db_retry(down, (0,))
    assert len(attempts) == 2


def test_other_database_errors_are_not_retried():
    attempts = []

    def broken():
        attempts.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        with_db_retry(broken, (0, 0))
    assert attempts == [1]


def test_backoff_doubles_from_the_first_wait():
    assert backoff(0.25, 4) == (0.25, 0.5, 1.0, 2.0)
    assert backoff(1.0, 0) == ()


def test_an_outage_error_without_a_message_is_retried_too():
    attempts = []

    def silent():
        attempts.append(1)
        if len(attempts) < 2:
            raise OperationalError("SELECT 1", {}, Exception(""))
        return "written"

    assert with_db_retry(silent, (0,)) == "written"
    assert len(attempts) == 2
