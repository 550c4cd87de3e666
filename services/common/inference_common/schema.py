"""The tables the api and worker use, as SQLAlchemy Core metadata.

Django (``services/web``) owns the schema and its migrations; these
definitions are the read/write view the non-Django services need, limited to
the columns they touch. ``tests/integration/test_schema_contract.py`` checks
every column here against the migrated Django database, so the two cannot
drift apart silently.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# Django's JSONField is jsonb on PostgreSQL and JSON text on SQLite.
JsonColumn = JSON().with_variant(JSONB(), "postgresql")
# Django's BigAutoField; on SQLite only INTEGER PRIMARY KEY auto-increments,
# which matters when these tables are created directly (unit tests).
# Columns added after the first release carry the same server default as
# Django's db_default, so writers that predate them keep working.
BigId = BigInteger().with_variant(Integer(), "sqlite")

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("artifact_path", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("feature_names", JsonColumn, nullable=False),
    Column("n_features", Integer, nullable=False),
    Column("objective", String(64), nullable=False),
    Column("n_outputs", Integer, nullable=False),
    #: Share (0-100) of unversioned requests a ``canary`` version receives.
    Column("traffic_percent", SmallInteger, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    #: Drift baseline (``inference_common.drift``); NULL until one is stored.
    Column("baseline", JsonColumn, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),
    Column("scopes", JsonColumn, nullable=False),
    Column("revoked", Boolean, nullable=False),
    Column("rate_limit_per_minute", Integer, nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("api_key_id", BigInteger, ForeignKey("api_keys.id")),
    Column("model_version_id", BigInteger, ForeignKey("model_versions.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("n_rows", Integer, nullable=False),
    Column("n_chunks", Integer, nullable=False),
    Column("chunks_done", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
)

job_chunks = Table(
    "job_chunks",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("job_id", Uuid, ForeignKey("jobs.id"), nullable=False),
    Column("chunk_index", Integer, nullable=False),
    Column("row_offset", Integer, nullable=False),
    Column("n_rows", Integer, nullable=False),
    # Chunks written before outputs_f32 existed have their outputs here, as JSON.
    Column("outputs", JsonColumn),
    Column("outputs_f32", LargeBinary),
    Column("shape", JsonColumn, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("job_id", "chunk_index"),
)

prediction_records = Table(
    "prediction_records",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("request_id", String(80), nullable=False, unique=True),
    Column("api_key_id", BigInteger, ForeignKey("api_keys.id")),
    Column("model_version_id", BigInteger, ForeignKey("model_versions.id"), nullable=False),
    Column("job_id", Uuid, ForeignKey("jobs.id")),
    Column("protocol", String(8), nullable=False),
    Column("n_rows", Integer, nullable=False),
    Column("inputs_digest", String(64), nullable=False),
    Column("outputs", JsonColumn),
    Column("outputs_digest", String(64), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("predict_ms", Float, nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("device", String(8), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=False),
    #: How the version was chosen: one of the ``ROUTE_*`` constants.
    Column("route", String(16), nullable=False, server_default=""),
    #: For a shadow copy, the request id of the answer the client got.
    Column("shadow_of", String(80), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    #: Answered by the api from its response cache (never reached the queue).
    Column("cache_hit", Boolean, nullable=False, server_default=false()),
)

#: The audit columns a prediction's writer fills (the rest keep their database defaults):
#: the worker's rows and the api's cache-hit rows (which add ``cache_hit``) alike.
PREDICTION_COLUMNS = [
    "request_id",
    "api_key_id",
    "model_version_id",
    "job_id",
    "protocol",
    "n_rows",
    "inputs_digest",
    "outputs",
    "outputs_digest",
    "latency_ms",
    "predict_ms",
    "batch_size",
    "device",
    "trace_id",
    "status",
    "error",
    "route",
    "shadow_of",
    "created_at",
]

review_policies = Table(
    "review_policies",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("model_name", String(200), nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False),
    Column("band_low", Float),
    Column("band_high", Float),
    Column("rules", JsonColumn, nullable=False),
)

#: Per model name: whether the api answers repeated inputs from its response
#: cache, for how long and how many entries. ``generation`` is part of every
#: cache key; the web tier bumps it when the versions serving the name change.
response_cache_policies = Table(
    "response_cache_policies",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("model_name", String(200), nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False),
    Column("ttl_s", Integer, nullable=False),
    Column("max_entries", Integer, nullable=False),
    Column("generation", BigInteger, nullable=False, server_default=text("0")),
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("request_id", String(80), ForeignKey("prediction_records.request_id"), nullable=False),
    Column("row_index", Integer, nullable=False),
    Column("model_version_id", BigInteger, ForeignKey("model_versions.id"), nullable=False),
    Column("features", JsonColumn, nullable=False),
    Column("outputs", JsonColumn, nullable=False),
    Column("score", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("request_id", "row_index"),
)

#: Job states, shared with Django's choices.
JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED = "queued", "running", "succeeded", "failed"
#: Model stages. ``production`` decides which version unversioned requests use.
STAGE_PRODUCTION, STAGE_STAGING, STAGE_ARCHIVED = "production", "staging", "archived"
#: A ``canary`` version takes ``traffic_percent`` of unversioned requests; a
#: ``shadow`` version gets a copy of each one, and its answer is only recorded.
STAGE_CANARY, STAGE_SHADOW = "canary", "shadow"
#: How a prediction's version was chosen (``prediction_records.route``).
ROUTE_PINNED = "pinned"  # the request named its version
ROUTE_PRODUCTION = "production"
ROUTE_CANARY = "canary"
ROUTE_SHADOW = "shadow"
ROUTE_JOB = "job"
ROUTES = (ROUTE_PINNED, ROUTE_PRODUCTION, ROUTE_CANARY, ROUTE_SHADOW, ROUTE_JOB)
#: Review item states; ``pending`` items are the review backlog.
REVIEW_PENDING, REVIEW_ACCEPTED, REVIEW_OVERRIDDEN = "pending", "accepted", "overridden"
