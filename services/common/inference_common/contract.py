"""The message contract between the api (producer) and the worker (consumer).

Task names, queue names and payload shapes are defined here once. The api
publishes Celery protocol-2 messages through ``send_task``; the worker
validates every payload with these models before touching a model, so a
malformed message is refused as a poison message instead of crashing a batch.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, PrivateAttr, ValidationInfo, model_validator

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
    """What every message that asks a model for predictions carries: the version, and its rows.

    The rows travel in ``rows_b64`` (:func:`encode_rows`): under 6 bytes a
    value instead of about 20 as JSON numbers, so the worker's consumer
    (which parses every message body) and its pool process each parse one
    string, decoded in one C call, instead of a Python float per value.
    In a message serialized with msgpack (job chunks: :data:`BINARY_SERIALIZER`)
    the same bytes travel as they are, in ``rows_f32``: base64 cost more CPU
    than the model on a chunk of a large job (encoding in the api, decoding in
    the worker). ``rows`` as JSON lists is still accepted (messages queued by
    an older producer, hand-made ones); upgrade the workers first: an older
    worker refuses the newer encodings. Exactly one of the three is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=64)
    model_version_id: int
    #: The width of the rows (of ``rows_b64``: how its values split into rows).
    n_features: int = Field(gt=0)
    # FiniteFloat: NaN/inf never reach a model, even from a hand-made message.
    rows: list[list[FiniteFloat]] | None = Field(default=None, min_length=1)
    #: :func:`encode_rows` of the ``(n, n_features)`` rows.
    rows_b64: str | None = Field(default=None, min_length=1)
    #: The bytes ``rows_b64`` encodes, unencoded: only in binary (msgpack) messages.
    rows_f32: bytes | None = Field(default=None, min_length=1, strict=True)
    api_key_id: int | None = None
    #: Unix time the api published the message; gives queue wait and latency.
    enqueued_at: float

    # The checked bytes of the rows (bytes, not an array: models compare their private attributes).
    _raw: bytes | None = PrivateAttr(default=None)

    @classmethod
    def of_rows(cls, matrix: np.ndarray, binary: bool = False, **fields: Any) -> Self:
        """A validated message carrying ``matrix``: what producers publish.

        As ``rows_b64``, or with ``binary`` as ``rows_f32`` (for a message
        serialized with :data:`BINARY_SERIALIZER`). The rows are checked as an
        array, by the rules decoding applies (``n_features`` wide, at least
        one, finite as float32), instead of decoding what was just encoded
        from them; every other field is validated as usual. ValueError if the
        rows break a rule.
        """
        # A value beyond float32's range becomes inf here, which the check refuses.
        with np.errstate(over="ignore"):
            rows = np.ascontiguousarray(matrix, dtype=_ROW_DTYPE)
        _check_rows(rows, fields.get("n_features"))
        raw = rows.tobytes()
        encoded = {"rows_f32": raw} if binary else {"rows_b64": encode_rows(rows)}
        return cls.model_validate({**fields, **encoded}, context={_CHECKED_ROWS: raw})

    @model_validator(mode="after")
    def _one_encoding_of_the_rows(self, info: ValidationInfo) -> Self:
        encodings = (self.rows, self.rows_b64, self.rows_f32)
        if sum(encoding is not None for encoding in encodings) != 1:
            raise ValueError("a message carries its rows in exactly one of 'rows', 'rows_b64' and 'rows_f32'")
        checked = (info.context or {}).get(_CHECKED_ROWS)
        # Decoded once, here: a malformed encoding is refused like any malformed message.
        if self.rows_b64 is not None:
            self._raw = checked if checked is not None else _checked_bytes(self.rows_b64, self.n_features)
        elif self.rows_f32 is not None:
            self._raw = checked if checked is not None else _checked_raw(self.rows_f32, self.n_features)
        return self

    def matrix(self) -> np.ndarray:
        """The rows as a float32 ``(n, width)`` array.

        Raises ValueError for legacy ``rows`` of unequal lengths, or for a
        ``rows_b64`` that was never validated (``model_construct``) and does
        not decode; the width, ``n_features`` for encoded rows, may still
        differ from the model's, which only the worker knows.
        """
        if self.rows is not None:
            return np.asarray(self.rows, dtype=np.float32)
        raw = self._raw
        if raw is None:
            if self.rows_f32 is not None:
                raw = _checked_raw(self.rows_f32, self.n_features)
            else:
                raw = _checked_bytes(self.rows_b64 or "", self.n_features)
        return _matrix_of(raw, self.n_features)

    def payload(self) -> dict[str, Any]:
        """The message body, without the encodings it does not use.

        JSON-safe, except ``rows_f32`` (bytes), which only a binary serializer carries.
        """
        body = self.model_dump(mode="json", exclude={"rows", "rows_b64", "rows_f32"})
        if self.rows is not None:
            body["rows"] = self.rows
        elif self.rows_f32 is not None:
            body["rows_f32"] = self.rows_f32
        else:
            body["rows_b64"] = self.rows_b64
        return body


#: Routes a sync request can carry (job chunks are recorded as ``job`` by the worker).
SyncRoute = Literal["pinned", "production", "canary", "shadow"]


class PredictRequest(_Message):
    """Payload of :data:`PREDICT_TASK`: a few rows answered synchronously (as :class:`_Message` says).

    ``route`` says how the api chose the version (``pinned`` when the request
    named it, ``production``, ``canary``, or ``shadow`` for the fire-and-forget
    copy sent to a shadow version). A shadow copy carries ``shadow_of``, the
    request id of the answer the client got; no other route may.
    """

    request_id: str = Field(min_length=1, max_length=64)
    protocol: Literal["v1", "v2"] = "v2"
    route: SyncRoute = ROUTE_PRODUCTION
    shadow_of: str | None = Field(default=None, min_length=1, max_length=64)
    #: W3C trace context of this request (``traceparent``/``tracestate``), for requests that
    #: share a message (:data:`BATCH_KWARG`): the message headers can carry only one.
    trace: dict[str, str] = Field(default_factory=dict, max_length=4)

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
    """Payload of :data:`JOB_CHUNK_TASK`: one slice of an async job (rows as :class:`_Message` says)."""

    job_id: uuid.UUID
    chunk_index: int = Field(ge=0)
    row_offset: int = Field(ge=0)


#: Rows are little-endian float32 whatever the host's byte order.
_ROW_DTYPE = np.dtype("<f4")
#: Validation context key of :meth:`_Message.of_rows`: the bytes behind ``rows_b64``, already checked.
_CHECKED_ROWS = "checked_rows"


def encode_rows(matrix: np.ndarray) -> str:
    """``rows_b64`` of a message: base64 of the rows as little-endian float32, row-major."""
    return base64.b64encode(np.ascontiguousarray(matrix, dtype=_ROW_DTYPE).tobytes()).decode("ascii")


def _check_rows(rows: np.ndarray, n_features: Any) -> None:
    """The rules every message's float32 rows follow, however they arrive."""
    if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] != n_features:
        raise ValueError(f"rows of shape {rows.shape} are not one or more rows of {n_features} values")
    if not np.isfinite(rows).all():
        raise ValueError("the rows contain NaN or infinite values")


def decode_rows(text: str, n_features: int) -> np.ndarray:
    """The ``(n, n_features)`` float32 rows of :func:`encode_rows` output; ValueError if it is not one.

    Refused: characters outside the base64 alphabet, bad padding, a length
    that is not a whole number of rows, no rows, NaN or infinity.
    """
    return _matrix_of(_checked_bytes(text, n_features), n_features)


def _checked_bytes(text: str, n_features: int) -> bytes:
    try:
        # Strict mode refuses characters outside the alphabet and misplaced padding, in C
        # (b64decode(validate=True) checks with a regular expression first: twice as slow).
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"rows_b64 is not valid base64 ({exc})") from None
    return _checked_raw(raw, n_features, "rows_b64")


def _checked_raw(raw: bytes, n_features: int, field: str = "rows_f32") -> bytes:
    row_bytes = _ROW_DTYPE.itemsize * n_features
    if not raw or len(raw) % row_bytes:
        raise ValueError(
            f"{field} holds {len(raw)} bytes, not a whole number (>= 1) of rows of "
            f"{n_features} float32 values ({row_bytes} bytes each)"
        )
    _check_rows(np.frombuffer(raw, dtype=_ROW_DTYPE).reshape(-1, n_features), n_features)
    return raw


def _matrix_of(raw: bytes, n_features: int) -> np.ndarray:
    # A copy in native byte order: writable and owned, as numpy and XGBoost expect.
    return np.frombuffer(raw, dtype=_ROW_DTYPE).reshape(-1, n_features).astype(np.float32)


#: Celery serializer of messages that carry ``rows_f32`` (kombu's msgpack: bytes stay bytes).
BINARY_SERIALIZER = "msgpack"


#: Keyword argument of a :data:`PREDICT_TASK` message that carries several requests (a list of
#: :class:`PredictRequest`), coalesced by one api process: the worker answers them with one
#: :data:`REPLIES_KWARG` message per reply queue. A message with ``request`` carries one.
BATCH_KWARG = "requests"
#: Key of a reply message body that answers several requests (a list of :class:`PredictReply`).
REPLIES_KWARG = "replies"


def carried_requests(kwargs: Any) -> list[Any] | None:
    """The request payloads of a :data:`PREDICT_TASK` message's kwargs, unvalidated.

    One for a ``request`` message, all of them for a coalesced (:data:`BATCH_KWARG`) one;
    None when the kwargs are neither (a hand-made or corrupt message).
    """
    if not isinstance(kwargs, dict):
        return None
    if isinstance(kwargs.get(BATCH_KWARG), list) and kwargs[BATCH_KWARG]:
        return list(kwargs[BATCH_KWARG])
    if "request" in kwargs:
        return [kwargs["request"]]
    return None


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
