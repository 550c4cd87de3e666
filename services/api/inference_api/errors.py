"""Errors with their own status and message, in the format each protocol expects.

Open Inference Protocol v2 errors are ``{"error": "..."}``; everything else
is RFC 9457 ``application/problem+json``. Bad input never becomes a 500.
"""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://github.com/inference-platform/inference-platform/blob/main/docs/errors.md#"


class ApiError(Exception):
    """An error answer: HTTP status, a stable machine code and a human message."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """Render an error for the protocol of the current request path."""
    if request.path.startswith("/v2/"):
        body = {"error": message}
        mimetype = "application/json"
    else:
        body = {
            "type": PROBLEM_TYPE_BASE + code,
            "title": code.replace("_", " "),
            "status": status,
            "detail": message,
        }
        mimetype = "application/problem+json"
    response = Response(orjson.dumps(body), status=status, mimetype=mimetype)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


#: Seconds a client should wait before retrying when the database is unreachable.
DATABASE_RETRY_AFTER_S = "5"

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def register_error_handlers(app: Flask) -> None:
    """Install handlers so every failure path answers with a structured error."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = exc.description or code
        if status == 404:
            message = f"no route for {request.method} {request.path}"
        elif status == 413:
            message = "request body is too large"
        headers = {}
        if status == 429:
            retry_after = getattr(exc, "retry_after", None)
            headers["Retry-After"] = str(retry_after or 60)
            message = f"rate limit exceeded ({exc.description}); retry later"
        valid_methods = getattr(exc, "valid_methods", None)
        if status == 405 and valid_methods:
            headers["Allow"] = ", ".join(valid_methods)
        return error_response(status, code, message, headers)

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response:
        # Keys, models and jobs are read from the database: while it is
        # unreachable the request cannot be served, and nothing was accepted.
        # That is an outage the client should retry (503), not a server bug (500).
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            logger.warning("database unavailable on %s %s: %s", request.method, request.path, exc.orig)
            return error_response(
                503,
                "database_unavailable",
                "the database is unavailable; retry later",
                {"Retry-After": DATABASE_RETRY_AFTER_S},
            )
        return _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; the request id is in the logs")
