"""An api built by its factory on SQLite and the file broker in a temp dir.

Everything here is answered before a message would be published, so no
worker is needed; the full request path is covered by tests/integration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import Engine

from inference_api import create_app
from inference_common.broker import task_queues, transport_options
from inference_common.contract import Queues, carried_requests
from inference_common.db import make_engine
from inference_common.keys import generate_key
from inference_common.schema import api_keys, metadata, model_versions

# Set before anything configures tracing: unit tests never export spans.
os.environ["OTEL_SDK_DISABLED"] = "true"
os.environ["OTEL_TRACES_EXPORTER"] = "none"


@dataclass
class Keys:
    """Raw keys of each kind, inserted into the database."""

    full: str
    predict_only: str
    revoked: str
    limited: str


@pytest.fixture(autouse=True)
def _fresh_file_broker_state() -> Iterator[None]:
    """Forget the exchanges and bindings kombu's file transport remembers process-wide.

    Each test has its own broker folder, but the transport keeps declarations
    in a class-level state: without this, a later test's declarations are
    skipped as already made and its folder never gets its routing table.
    """
    from kombu.transport.filesystem import Transport

    Transport.global_state.clear()
    yield
    Transport.global_state.clear()


@pytest.fixture
def engine(tmp_path) -> Engine:
    """A SQLite database with the tables the api reads."""
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite3")
    metadata.create_all(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for version, stage in (("1", "production"), ("2", "staging")):
            conn.execute(
                model_versions.insert().values(
                    name="iris",
                    version=version,
                    stage=stage,
                    artifact_path="x.json",
                    sha256="0" * 64,
                    feature_names=["a", "b", "c", "d"],
                    n_features=4,
                    objective="multi:softprob",
                    n_outputs=3,
                    created_at=now,
                )
            )
        conn.execute(
            model_versions.insert().values(
                name="draft",
                version="1",
                stage="staging",
                artifact_path="y.json",
                sha256="1" * 64,
                feature_names=["a"],
                n_features=1,
                objective="reg:squarederror",
                n_outputs=1,
                created_at=now,
            )
        )
    return engine


def _key(engine: Engine, name: str, scopes: list[str], revoked: bool = False, limit: int = 0) -> str:
    key = generate_key()
    with engine.begin() as conn:
        conn.execute(
            api_keys.insert().values(
                name=name,
                prefix=key.prefix,
                key_hash=key.digest,
                scopes=scopes,
                revoked=revoked,
                rate_limit_per_minute=limit,
            )
        )
    return key.raw


@pytest.fixture
def make_key(engine: Engine):
    """``make_key(name, scopes, revoked=False, limit=0)``: insert a key, return its raw text."""

    def make(name: str, scopes: list[str], revoked: bool = False, limit: int = 0) -> str:
        return _key(engine, name, scopes, revoked, limit)

    return make


@pytest.fixture
def keys(engine: Engine) -> Keys:
    """One key of each kind."""
    return Keys(
        full=_key(engine, "full", ["predict", "jobs"]),
        predict_only=_key(engine, "predict-only", ["predict"]),
        revoked=_key(engine, "revoked", ["predict", "jobs"], revoked=True),
        limited=_key(engine, "limited", ["predict"], limit=2),
    )


@pytest.fixture
def app(engine: Engine, tmp_path) -> Iterator[Flask]:
    """The api, from its factory, with small limits that tests can reach."""
    app = create_app(
        {
            "database_url": str(engine.url),
            "broker_url": f"filesystem://{tmp_path}/broker",
            "cache_ttl_s": 0.0,
            "max_sync_body_bytes": 4096,
            "max_sync_rows": 3,
        }
    )
    yield app
    app.extensions["inference"].dispatcher.close()


@pytest.fixture
def client(app: Flask):
    """A test client."""
    return app.test_client()


@pytest.fixture
def published(tmp_path):
    """``published(prefix)``: (request, message properties) of every predict request the app left
    on its file broker (in ``tmp_path/broker``, queues of ``prefix``), taken off the queue;
    ``published(prefix, jobs=True)``: (chunk, properties) of every job chunk."""
    from kombu import Connection, Consumer

    def read(prefix: str, jobs: bool = False) -> list[tuple[dict, dict]]:
        found: list[tuple[dict, dict]] = []

        def take(body, message) -> None:
            carried = [body[1]["chunk"]] if jobs else carried_requests(body[1])
            found.extend((payload, dict(message.properties)) for payload in carried)
            message.ack()

        url = f"filesystem://{tmp_path}/broker"
        with (
            Connection("filesystem://", transport_options=transport_options(url)) as conn,
            Consumer(
                conn,
                queues=[task_queues(Queues(prefix))[1 if jobs else 0]],
                callbacks=[take],
                accept=["json", "msgpack"],
            ),
        ):
            try:
                while True:
                    conn.drain_events(timeout=0.3)
            except TimeoutError:
                pass
        return found

    return read
