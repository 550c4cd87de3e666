"""The message contract between the api (producer) and the worker (consumer).

Task names, queue names and payload shapes are defined here once. The api
publishes Celery protocol-2 messages through ``send_task``; the worker
validates every payload with these models before touching a model, so a
malformed message is refused as a poison message instead of crashing a batch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

from .schema import ROUTE_PRODUCTION, ROUTE_SHADOW

#: Sync single requests, consumed by the micro-batching task.
PREDICT_TASK = "inference.predict"
#: One chunk of an async job's rows.
JOB_CHUNK_TASK = "inference.predict_chunk"

#: Output tensor name in v2 responses.
OUTPUT_NAME = "predict"


@dataclass(frozen=True)
class Queues:
    """Queue and exchange names, derived from one prefix.

    Tests use a unique prefix per run so that parallel runs on one broker
    never consume each other's messages.
    """

    prefix: str = "inference"

    @property
    def predict(self) -> str:
        """Durable queue for sync requests."""
        return f"{self.prefix}.predict"

    @property
    def jobs(self) -> str:
        """Durable queue for async job chunks."""
        return f"{self.prefix}.jobs"

    @property
    def training(self) -> str:
        """Durable queue for training jobs, consumed by the web tier's trainer."""
        return f"{self.prefix}.training"

    @property
    def dead_letter_exchange(self) -> str:
        """Exchange that receives rejected and over-delivered messages."""
        return f"{self.prefix}.dlx"

    @property
    def dead_letter(self) -> str:
        """Durable queue bound to the dead-letter exchange."""
        return f"{self.prefix}.dlq"

    def reply(self, client: str) -> str:
        """Per-process reply queue of an api worker."""
        return f"{self.prefix}.reply.{client}"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=64)
    model_version_id: int
    n_features: int = Field(gt=0)
    # FiniteFloat: NaN/inf never reach a model, even from a hand-made message.
    rows: list[list[FiniteFloat]] = Field(min_length=1)
    api_key_id: int | None = None
    #: Unix time the api published the message; gives queue wait and latency.
    enqueued_at: float


#: Routes a sync request can carry (job chunks are recorded as ``job`` by the worker).
SyncRoute = Literal["pinned", "production", "canary", "shadow"]


class PredictRequest(_Message):
    """Payload of :data:`PREDICT_TASK`: a few rows answered synchronously.

    ``route`` says how the api chose the version (``pinned`` when the request
    named it, ``production``, ``canary``, or ``shadow`` for the fire-and-forget
    copy sent to a shadow version). A shadow copy carries ``shadow_of``, the
    request id of the answer the client got; no other route may.
    """

    request_id: str = Field(min_length=1, max_length=64)
    protocol: Literal["v1", "v2"] = "v2"
    route: SyncRoute = ROUTE_PRODUCTION
    shadow_of: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _shadow_of_only_on_shadow_copies(self) -> PredictRequest:
        # A shadow record without its primary, or a primary that claims to be a
        # copy, would make the side-by-side comparison in the web tier lie.
        if (self.route == ROUTE_SHADOW) != (self.shadow_of is not None):
            raise ValueError("shadow_of is required for route 'shadow' and refused for any other route")
        if self.route == ROUTE_SHADOW and self.shadow_of == self.request_id:
            raise ValueError("a shadow copy needs its own request id, not the one of its primary")
        return self


class JobChunk(_Message):
    """Payload of :data:`JOB_CHUNK_TASK`: one slice of an async job."""

    job_id: uuid.UUID
    chunk_index: int = Field(ge=0)
    row_offset: int = Field(ge=0)


class PredictReply(BaseModel):
    """What the worker sends to the api's reply queue for a sync request.

    ``outputs`` is the flattened model output and ``shape`` its shape, exactly
    as the booster's own ``predict`` returned it. On failure ``error`` is set
    and the outputs are empty.
    """

    model_config = ConfigDict(extra="forbid")

    request_id: str
    outputs: list[float] = Field(default_factory=list)
    shape: list[int] = Field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    device: str | None = None
    batch_size: int | None = None

    @classmethod
    def failure(cls, request_id: str, code: str, detail: str) -> PredictReply:
        """A reply that tells the caller why its request was not answered."""
        return cls(request_id=request_id, error=detail, error_code=code)


def new_request_id() -> str:
    """A fresh request id (hex uuid4): also the Celery task id and correlation id."""
    return uuid.uuid4().hex


def reply_body(reply: PredictReply) -> dict[str, Any]:
    """Serialize a reply for publishing (JSON-safe dict)."""
    return reply.model_dump(mode="json")
