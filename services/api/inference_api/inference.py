"""Inference routes: Open Inference Protocol v2, KServe v1 ``:predict`` and async jobs."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, g, request, url_for
from opentelemetry import trace

from inference_common.contract import (
    OUTPUT_NAME,
    PREDICT_TASK,
    PredictReply,
    PredictRequest,
    encode_rows,
    new_request_id,
)
from inference_common.digests import as_float32
from inference_common.schema import ROUTE_SHADOW
from inference_common.telemetry import ATTR_MODEL_NAME, ATTR_MODEL_VERSION

from .auth import Principal, require_scope
from .binary_tensors import HEADER as BINARY_HEADER
from .binary_tensors import MEDIA_TYPE as BINARY_MEDIA_TYPE
from .binary_tensors import framed_response, wants_binary_output
from .decoding import decode_v1, decode_v2, read_json, read_v2
from .errors import ApiError
from .metrics import ROUTED, SHADOW_PUBLISH_FAILURES
from .registry import ModelInfo, Route
from .services import services

logger = logging.getLogger(__name__)

bp = Blueprint("inference", __name__)

#: Response header naming the version that answered (canary routing makes it vary).
MODEL_VERSION_HEADER = "X-Model-Version"

#: Worker error codes and the status the client sees.
_REPLY_STATUS = {"invalid_input": 400, "timeout": 504, "model_load_failed": 500, "invalid_message": 500}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _principal() -> Principal:
    return g.principal


def _predict(route: Route, matrix: np.ndarray, protocol: str) -> tuple[str, PredictReply]:
    """Publish one sync request (and its shadow copy), wait for the worker's answer.

    A response cache hit answers at once: nothing is published (so no shadow copy either).
    """
    svc = services()
    model = route.model
    if matrix.shape[0] > svc.settings.max_sync_rows:
        raise ApiError(
            413,
            "too_many_rows",
            f"{matrix.shape[0]} rows exceed the sync limit of {svc.settings.max_sync_rows}; "
            f"use POST /v1/models/{model.name}/jobs for large inputs",
        )
    request_id = new_request_id()
    # Model identity on the server span: traces can be searched by model and version.
    span = trace.get_current_span()
    span.set_attribute(ATTR_MODEL_NAME, model.name)
    span.set_attribute(ATTR_MODEL_VERSION, model.version)
    span.set_attribute("inference.route", route.route)
    # The id the client gets in X-Request-ID finds the trace (the audit row stores both).
    span.set_attribute("inference.request.id", request_id)
    # The float32 rows the model sees: the cache key and, encoded bit for bit, the message's rows.
    # Decoding refused values beyond float32's range, so none becomes inf here.
    rows = as_float32(matrix)
    cached = svc.response_cache.lookup(route, rows)
    if cached.reply is not None:
        svc.response_cache.record_hit(cached, request_id, protocol, route.route, _principal().key_id)
        return request_id, cached.reply
    # Already validated by decoding (finite, n_features wide, at least one row): construct without
    # validating again. Rows as base64 float32 (rows_b64): a string to serialize and parse, not a
    # Python float per value, in the api, the worker's consumer and its pool process.
    message = PredictRequest.model_construct(
        request_id=request_id,
        protocol=protocol,
        model=model.name,
        version=model.version,
        model_version_id=model.id,
        n_features=model.n_features,
        rows=None,
        rows_b64=encode_rows(rows),
        api_key_id=_principal().key_id,
        enqueued_at=time.time(),
        route=route.route,
        shadow_of=None,
        # Every field given: model_construct would otherwise inspect the default factory's
        # signature on each call (a measurable share of the api's CPU). The dispatcher fills it.
        trace={},
    )
    shadow = route.shadow

    def send_shadow() -> None:
        if shadow is not None:
            _publish_shadow(shadow, message)

    ROUTED.labels(route.route).inc()
    reply = svc.dispatcher.call(message.payload(), svc.settings.sync_timeout_s, after_publish=send_shadow)
    if reply.error:
        status = _REPLY_STATUS.get(reply.error_code or "", 500)
        raise ApiError(status, reply.error_code or "worker_error", f"{reply.error} (request id {request_id})")
    svc.response_cache.store(cached, reply)
    return request_id, reply


def _publish_shadow(shadow: ModelInfo, primary: PredictRequest) -> None:
    """Send a copy of ``primary`` to the shadow version, fire and forget.

    No reply queue is named, so the worker records the shadow's answer and
    sends nothing back; a failure here is logged and counted, never passed
    on to the client, whose request was already accepted. The copy carries
    the primary's rows as they are, with their width (``n_features``): the
    registry only pairs a shadow of the same width, and a worker refuses
    rows of any other width for the shadow's model.
    """
    copy = primary.model_copy(
        update={
            "request_id": new_request_id(),
            "model": shadow.name,
            "version": shadow.version,
            "model_version_id": shadow.id,
            "enqueued_at": time.time(),
            "route": ROUTE_SHADOW,
            "shadow_of": primary.request_id,
        }
    )
    try:
        services().dispatcher.publish(
            PREDICT_TASK, {"request": copy.payload()}, copy.request_id, reply=False, retry=False
        )
    except Exception as exc:  # whatever went wrong, the client's answer must not depend on it
        SHADOW_PUBLISH_FAILURES.inc()
        logger.warning(
            "shadow copy of %s to %s v%s was not published: %s",
            primary.request_id,
            shadow.name,
            shadow.version,
            exc,
        )
        return
    ROUTED.labels(ROUTE_SHADOW).inc()


def _sync_body() -> Any:
    return read_json(request, services().settings.max_sync_body_bytes)


# -- Open Inference Protocol v2 -------------------------------------------------
def _metadata(model: ModelInfo) -> dict[str, Any]:
    versions = [info.version for info in services().registry.versions(model.name)]
    return {
        "name": model.name,
        "versions": versions,
        "platform": "xgboost",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, model.n_features]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": model.output_shape}],
        "parameters": {
            "version": model.version,
            "stage": model.stage,
            "objective": model.objective,
            "feature_names": list(model.feature_names),
        },
    }


def _default_version(name: str) -> ModelInfo:
    registry = services().registry
    try:
        return registry.resolve(name)
    except ApiError as exc:
        if exc.code != "no_production_version":
            raise
        return registry.versions(name)[-1]


@bp.get("/v2/models/<name>")
def v2_model_metadata(name: str) -> Response:
    """Model metadata (the production version's, else the newest)."""
    return _json(_metadata(_default_version(name)))


@bp.get("/v2/models/<name>/versions/<version>")
def v2_version_metadata(name: str, version: str) -> Response:
    """Metadata of one version."""
    return _json(_metadata(services().registry.resolve(name, version)))


def _ready_answer(model: ModelInfo) -> Response:
    ready = services().dispatcher.ready
    return _json({"name": model.name, "version": model.version, "ready": ready}, 200 if ready else 503)


@bp.get("/v2/models/<name>/ready")
def v2_model_ready(name: str) -> Response:
    """Ready when a production version exists and the broker is reachable."""
    return _ready_answer(services().registry.resolve(name))


@bp.get("/v2/models/<name>/versions/<version>/ready")
def v2_version_ready(name: str, version: str) -> Response:
    """Ready when the version exists and the broker is reachable."""
    return _ready_answer(services().registry.resolve(name, version))


def _served_by(request_id: str, model: ModelInfo) -> dict[str, str]:
    return {"X-Request-ID": request_id, MODEL_VERSION_HEADER: model.version}


def _v2_infer(route: Route) -> Response:
    require_scope(_principal(), "predict")
    model = route.model
    payload, binary = read_v2(request, services().settings.max_sync_body_bytes)
    parsed, matrix = decode_v2(payload, model.n_features, binary)
    # Decided before publishing: a bad flag must not cost a prediction.
    binary_output = wants_binary_output(parsed)
    request_id, reply = _predict(route, matrix, "v2")
    output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": reply.shape}
    body = {
        "model_name": model.name,
        "model_version": model.version,
        "id": parsed.id if parsed.id is not None else request_id,
        "outputs": [output],
    }
    if binary_output:
        return framed_response(body, output, reply.outputs, _served_by(request_id, model))
    output["data"] = reply.outputs
    return _json(body, headers=_served_by(request_id, model))


@bp.post("/v2/models/<name>/infer")
def v2_infer(name: str) -> Response:
    """Predict with the production version (or the canary, for its share of requests)."""
    return _v2_infer(services().registry.route(name))


@bp.post("/v2/models/<name>/versions/<version>/infer")
def v2_version_infer(name: str, version: str) -> Response:
    """Predict with an explicit version (pinned: no canary, no shadow copy)."""
    return _v2_infer(services().registry.route(name, version))


# -- KServe v1 --------------------------------------------------------------------
def _v1_predict(route: Route) -> Response:
    require_scope(_principal(), "predict")
    model = route.model
    matrix = decode_v1(_sync_body(), model.n_features)
    request_id, reply = _predict(route, matrix, "v1")
    outputs = np.asarray(reply.outputs, dtype=np.float64).reshape(reply.shape)
    return _json(
        {"predictions": outputs.tolist(), "model_name": model.name, "model_version": model.version},
        headers=_served_by(request_id, model),
    )


@bp.post("/v1/models/<name>:predict")
def v1_predict(name: str) -> Response:
    """``{"instances": [[...]]}`` -> ``{"predictions": [...]}`` with the production version (or canary)."""
    return _v1_predict(services().registry.route(name))


@bp.post("/v1/models/<name>/versions/<version>:predict")
def v1_version_predict(name: str, version: str) -> Response:
    """v1 predict with an explicit version (pinned)."""
    return _v1_predict(services().registry.route(name, version))


# -- Async jobs -------------------------------------------------------------------
@bp.post("/v1/models/<name>/jobs")
def create_job(name: str) -> Response:
    """Accept a large input for background prediction: 202 with the job's location.

    Jobs use the production version (or the one named by ``?version=``), never
    the canary or shadow: a job's rows must all come from one version.
    """
    require_scope(_principal(), "jobs")
    svc = services()
    version = request.args.get("version")
    model = svc.registry.resolve(name, version)
    matrix = _job_rows(model.n_features, svc.settings.max_body_bytes)
    if matrix.shape[0] > svc.settings.max_job_rows:
        raise ApiError(413, "too_many_rows", f"a job may hold at most {svc.settings.max_job_rows} rows")
    job = svc.jobs.submit(model, matrix, _principal())
    location = url_for("inference.get_job", job_id=job["id"])
    job["location"] = location
    return _json(job, 202, headers={"Location": location})


def _job_rows(n_features: int, max_bytes: int) -> np.ndarray:
    """A job's rows: a KServe v1 body, or an Open Inference Protocol v2 one (JSON, or framed with
    binary tensors: large inputs then skip JSON parsing, the costliest step of a big job's upload)."""
    if request.headers.get(BINARY_HEADER) is not None or request.mimetype == BINARY_MEDIA_TYPE:
        payload, binary = read_v2(request, max_bytes)
        return decode_v2(payload, n_features, binary)[1]
    payload = read_json(request, max_bytes)
    if isinstance(payload, dict) and "inputs" in payload and "instances" not in payload:
        return decode_v2(payload, n_features)[1]
    return decode_v1(payload, n_features)


@bp.get("/v1/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    """A job's status; its predictions (in input order) once it has succeeded.

    ``?wait=S`` holds the answer until the job ends or S seconds pass (at most
    ``API_JOB_MAX_WAIT_S``): one request instead of polling, answered as the job ends.
    """
    require_scope(_principal(), "jobs")
    svc = services()
    wait_s = _wait_seconds(request.args.get("wait"), svc.settings.job_max_wait_s)
    return _json(svc.jobs.get(job_id, _principal(), wait_s))


def _wait_seconds(text: str | None, most: float) -> float:
    if text is None:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= 3600:  # NaN fails too
        raise ApiError(400, "invalid_wait", f"wait must be a number of seconds from 0 to 3600, got {text!r}")
    # Longer waits are cut to the api's own bound: the client then simply asks again.
    return min(seconds, most)
