"""The audit writer of cache hits: batched off the request thread, never dropping a row quietly."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading

import numpy as np
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from inference_api.cache_audit import HitAuditWriter, HitRecord, new_hit_record
from inference_common.db import make_engine
from inference_common.digests import array_digest
from inference_common.schema import metadata, prediction_records


def _record(index: int, n_rows: int = 1) -> HitRecord:
    return new_hit_record(
        request_id=f"hit-{index}",
        api_key_id=None,
        model_version_id=1,
        protocol="v1",
        route="production",
        inputs_digest="0" * 64,
        n_rows=n_rows,
        outputs=np.full((n_rows, 3), 0.25, dtype=np.float32),
        latency_ms=0.3,
        device="cpu",
        trace_id="",
    )


def _written(engine: Engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(prediction_records)).all()
    return {row.request_id: row for row in rows}


def _outcome(name: str) -> float:
    return (
        REGISTRY.get_sample_value("inference_api_response_cache_audit_rows_total", {"outcome": name}) or 0.0
    )


def test_it_writes_hits_in_the_background_as_cache_hit_rows(engine):
    writer = HitAuditWriter(engine, buffer_rows=100, outputs_max_rows=2)
    before = _outcome("background")
    for index in range(10):
        writer.submit(_record(index))
    writer.submit(_record(10, n_rows=3))
    assert writer.flush()
    rows = _written(engine)
    assert sorted(rows) == sorted(f"hit-{index}" for index in range(11))
    assert all(row.cache_hit and row.status == "ok" and row.route == "production" for row in rows.values())
    assert rows["hit-0"].outputs == [[0.25, 0.25, 0.25]]
    assert rows["hit-0"].outputs_digest == array_digest(np.full((1, 3), 0.25))
    # Like the worker: outputs are kept in full only for small requests, the digest always.
    assert rows["hit-10"].outputs is None
    assert rows["hit-10"].outputs_digest
    assert _outcome("background") == before + 11
    writer.close()


def test_a_full_buffer_makes_the_request_write_its_own_row(engine, tmp_path):
    writer = HitAuditWriter(engine, buffer_rows=1, outputs_max_rows=100)
    # Another connection holds SQLite's write lock: the writer thread's insert
    # waits (busy_timeout), so the buffer of one row fills up.
    blocker = sqlite3.connect(tmp_path / "db.sqlite3", check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.0, blocker.commit)
    release.start()
    before = _outcome("sync")
    try:
        for index in range(4):
            writer.submit(_record(index))
    finally:
        release.join()
        blocker.close()
    assert writer.flush()
    assert sorted(_written(engine)) == [f"hit-{index}" for index in range(4)]
    assert _outcome("sync") >= before + 1
    writer.close()


def test_closing_writes_what_is_still_buffered(engine):
    writer = HitAuditWriter(engine, buffer_rows=1000, outputs_max_rows=100)
    for index in range(200):
        writer.submit(_record(index))
    writer.close()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(prediction_records)).scalar_one() == 200


def test_rows_the_database_refuses_are_logged_and_counted_and_the_writer_goes_on(tmp_path, caplog):
    engine = make_engine(f"sqlite:///{tmp_path}/empty.sqlite3")  # no tables yet
    writer = HitAuditWriter(engine, buffer_rows=10, outputs_max_rows=100, retry_delays_s=(0.01, 0.01))
    before = _outcome("failed")
    with caplog.at_level(logging.ERROR, logger="inference_api.cache_audit"):
        writer.submit(_record(1))
        assert writer.flush()
    assert _outcome("failed") == before + 1
    assert "lost 1 cache hit audit rows after 3 attempts" in caplog.text
    metadata.create_all(engine)
    writer.submit(_record(2))
    assert writer.flush()
    assert list(_written(engine)) == ["hit-2"]
    writer.close()


def test_a_row_the_database_refuses_is_counted_at_once_not_retried(engine, caplog):
    # A retry would wait 5 s: only an unreachable database is worth waiting for.
    writer = HitAuditWriter(engine, buffer_rows=10, outputs_max_rows=100, retry_delays_s=(5.0,))
    before = _outcome("failed")
    # NOT NULL: the database refuses this row whenever it is sent.
    refused = dataclasses.replace(_record(1), protocol=None)
    with caplog.at_level(logging.ERROR, logger="inference_api.cache_audit"):
        writer.submit(refused)
        assert writer.flush(timeout_s=3)
    assert _outcome("failed") == before + 1
    assert "lost 1 cache hit audit rows after 1 attempts" in caplog.text
    assert _written(engine) == {}
    writer.close()
