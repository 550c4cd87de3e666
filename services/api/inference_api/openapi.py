"""``GET /openapi.json``: the api's contract, generated from the request models."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

from .binary_tensors import HEADER as BINARY_HEADER
from .binary_tensors import MEDIA_TYPE as BINARY_MEDIA_TYPE
from .decoding import InferRequest, V1Request

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


_PROBLEM = _json_content(_ref("Problem"), "application/problem+json")
_V2_ERROR = _json_content(_ref("V2Error"))
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}


#: Headers of a sync prediction's answer; the version varies while a canary takes traffic.
_SERVED_HEADERS = {
    "X-Request-ID": {
        "description": "Id of the request in the audit log (the trace links to it).",
        "schema": {"type": "string"},
    },
    "X-Model-Version": {
        "description": "The version that answered: production, or the canary for its share of "
        "unversioned requests, or the version named in the path.",
        "schema": {"type": "string"},
    },
    "X-Cache": {
        "description": "`hit` when the response cache answered (nothing reached the queue), `miss` when a "
        "worker did and the answer was offered to the cache; absent for models without a cache policy.",
        "schema": {"type": "string", "enum": ["hit", "miss"]},
    },
}


#: The binary tensor data extension (binary_tensors): a JSON part of this many bytes, then raw tensors.
_BINARY_HEADER = {
    "name": BINARY_HEADER,
    "in": "header",
    "required": False,
    "description": "Binary tensor data extension (as Triton): the body is the JSON InferRequest of this "
    "many bytes, followed by the raw little-endian bytes of each input whose parameters.binary_data_size "
    "is set, in input order. Content-Type application/octet-stream (or none).",
    "schema": {"type": "integer", "minimum": 0},
}
_BINARY_BODY = {BINARY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}


def _errors(statuses: list[int], body: dict[str, Any]) -> dict[str, Any]:
    return {str(status): {"description": "error", **body} for status in statuses}


def build_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    secured = [{"bearerAuth": []}]
    infer_errors = _errors([400, 401, 403, 404, 413, 415, 429, 500, 503, 504], _V2_ERROR)
    v1_errors = _errors([400, 401, 403, 404, 413, 415, 429, 500, 503, 504], _PROBLEM)
    infer = {
        "security": secured,
        "requestBody": {
            "required": True,
            "description": f"A JSON InferRequest, or one framed with binary tensors (see {BINARY_HEADER}).",
            "content": {**_json_content(_ref("InferRequest"))["content"], **_BINARY_BODY},
        },
        "responses": {
            "200": {
                "description": "predictions; with parameters.binary_data_output (or binary_data on the "
                f"requested output) the JSON InferResponse of {BINARY_HEADER} bytes, then the output as "
                "little-endian FP32 bytes (its parameters.binary_data_size says how many)",
                "headers": {
                    **_SERVED_HEADERS,
                    BINARY_HEADER: {
                        "description": "Length of the JSON part of a binary answer.",
                        "schema": {"type": "integer"},
                    },
                },
                "content": {**_json_content(_ref("InferResponse"))["content"], **_BINARY_BODY},
            },
            **infer_errors,
        },
    }
    v1_predict = {
        "security": secured,
        "requestBody": {"required": True, **_json_content(_ref("V1Request"))},
        "responses": {
            "200": {
                "description": "predictions",
                "headers": _SERVED_HEADERS,
                **_json_content(_ref("V1Response")),
            },
            **v1_errors,
        },
    }
    metadata = {
        "security": secured,
        "responses": {
            "200": {"description": "model metadata", **_json_content(_ref("ModelMetadata"))},
            **_errors([401, 404, 429], _V2_ERROR),
        },
    }
    ready = {
        "security": secured,
        "responses": {
            "200": {"description": "ready", **_json_content({"type": "object"})},
            **_errors([401, 404, 429, 503], _V2_ERROR),
        },
    }
    health = {"responses": {"200": {"description": "up", **_json_content({"type": "object"})}}}
    readiness = {
        "responses": {
            "200": {"description": "ready", **_json_content({"type": "object"})},
            "503": {"description": "not ready", **_json_content({"type": "object"})},
        }
    }
    schemas = _schemas(InferRequest, V1Request)
    schemas.update(
        Problem={
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
            },
        },
        V2Error={"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        InferResponse={
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {"type": "array", "items": {"type": "object"}},
            },
        },
        V1Response={
            "type": "object",
            "required": ["predictions"],
            "properties": {"predictions": {"type": "array"}},
        },
        ModelMetadata={
            "type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array"},
                "outputs": {"type": "array"},
            },
        },
        Job={
            "type": "object",
            "required": ["id", "status"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
                "rows": {"type": "integer"},
                "predictions": {"type": "array"},
                "error": {"type": "string"},
            },
        },
    )
    job_errors = _errors([400, 401, 403, 404, 413, 415, 429, 503], _PROBLEM)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Inference platform API",
            "version": "0.1.0",
            "description": "Open Inference Protocol v2, KServe v1 predict and async jobs over RabbitMQ.",
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
        "paths": {
            "/healthz": {"get": health},
            "/readyz": {"get": readiness},
            "/v2/health/live": {"get": health},
            "/v2/health/ready": {"get": readiness},
            "/v2/models/{name}": {"get": {**metadata, "parameters": [_NAME]}},
            "/v2/models/{name}/versions/{version}": {"get": {**metadata, "parameters": [_NAME, _VERSION]}},
            "/v2/models/{name}/ready": {"get": {**ready, "parameters": [_NAME]}},
            "/v2/models/{name}/versions/{version}/ready": {"get": {**ready, "parameters": [_NAME, _VERSION]}},
            "/v2/models/{name}/infer": {"post": {**infer, "parameters": [_NAME, _BINARY_HEADER]}},
            "/v2/models/{name}/versions/{version}/infer": {
                "post": {**infer, "parameters": [_NAME, _VERSION, _BINARY_HEADER]}
            },
            "/v1/models/{name}:predict": {"post": {**v1_predict, "parameters": [_NAME]}},
            "/v1/models/{name}/versions/{version}:predict": {
                "post": {**v1_predict, "parameters": [_NAME, _VERSION]}
            },
            "/v1/models/{name}/jobs": {
                "post": {
                    "security": secured,
                    "parameters": [_NAME, {"name": "version", "in": "query", "schema": {"type": "string"}}],
                    "requestBody": {
                        "required": True,
                        "description": "A KServe v1 body, or an Open Inference Protocol v2 InferRequest: "
                        f"JSON, or framed with binary tensors (see {BINARY_HEADER}) for large inputs.",
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [_ref("V1Request"), _ref("InferRequest")]}
                            },
                            **_BINARY_BODY,
                        },
                    },
                    "responses": {
                        "202": {"description": "accepted", **_json_content(_ref("Job"))},
                        **job_errors,
                    },
                }
            },
            "/v1/jobs/{id}": {
                "get": {
                    "security": secured,
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "wait",
                            "in": "query",
                            "description": "Seconds to hold the answer until the job ends (long-polling); "
                            "at most API_JOB_MAX_WAIT_S are waited, and the answer may come sooner.",
                            "schema": {"type": "number", "minimum": 0, "maximum": 3600},
                        },
                    ],
                    "responses": {"200": {"description": "job", **_json_content(_ref("Job"))}, **job_errors},
                }
            },
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text format"}}}},
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    """Serve the OpenAPI document."""
    return jsonify(build_spec())
