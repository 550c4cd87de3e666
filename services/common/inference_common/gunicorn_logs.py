"""gunicorn's logs in the one JSON format, with an access line that knows its trace.

Both gunicorn configs (api and web) set ``logger_class`` to :class:`AccessLogger`
and ``logconfig_dict`` to :func:`logconfig_dict`. gunicorn writes the access
line after the application returned, when the request's span has already
ended and is no longer current; the instrumentations leave the span in the
WSGI environ, and the access line takes its trace and span id from there.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger
from opentelemetry import trace

from .logs import logging_config

#: Where a server span is left in the WSGI environ for the access line: the
#: Flask instrumentation's own key (``_ENVIRON_SPAN_KEY``; a test checks it),
#: and ours, which :func:`keep_span_for_access_log` sets from the Django
#: instrumentation's response hook (Django's middleware removes its own key).
SERVER_SPAN_KEY = "inference.server_span"
SPAN_ENVIRON_KEYS = ("opentelemetry-flask.span_key", SERVER_SPAN_KEY)

#: Paths polled by probes and scrapers: logged at DEBUG, so that a quiet
#: service does not fill its log with them every few seconds.
QUIET_PATHS = ("/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready")


def logconfig_dict(service: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its error and access loggers through our formatter."""
    return logging_config(service)


def keep_span_for_access_log(span: trace.Span, request: Any, response: Any) -> None:
    """A ``response_hook`` for ``DjangoInstrumentor``: leave the span in the environ for the access line.

    ``request.META`` is the WSGI environ gunicorn later hands to :meth:`AccessLogger.access`.
    """
    request.META[SERVER_SPAN_KEY] = span


def request_span(environ: dict[str, Any]) -> trace.Span | None:
    """The server span the instrumentation opened for this request, if any."""
    for key in SPAN_ENVIRON_KEYS:
        span = environ.get(key)
        if isinstance(span, trace.Span) and span.get_span_context().is_valid:
            return span
    return None


class AccessLogger(Logger):
    """gunicorn's logger with a structured access line: method, path, status, duration, trace.

    ``accesslog`` turns the access line on (``None`` turns it off), as in
    plain gunicorn; its format string is not used, the fields are JSON keys.
    The query string is left out: it is the client's and may hold anything.
    """

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Log one line per request on ``gunicorn.access``."""
        # With logconfig_dict set, gunicorn would log access lines even
        # without accesslog; keep the switch meaning what it says.
        if not self.cfg.accesslog:
            return
        status = resp.status
        code = int(str(status).split(None, 1)[0]) if status else 0
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        fields: dict[str, Any] = {
            "http_method": method,
            "http_path": path,
            "http_status": code,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote_addr": environ.get("REMOTE_ADDR", ""),
            "user_agent": environ.get("HTTP_USER_AGENT", ""),
            "response_bytes": getattr(resp, "sent", None),
        }
        request_id = dict((k.lower(), v) for k, v in (resp.headers or [])).get("x-request-id")
        if request_id:
            fields["request_id"] = request_id
        span = request_span(environ)
        if span is not None:
            context = span.get_span_context()
            fields["trace_id"] = format(context.trace_id, "032x")
            fields["span_id"] = format(context.span_id, "016x")
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        try:
            self.access_log.log(level, "%s %s %s", method, path, code, extra=fields)
        except Exception:
            self.exception("could not write the access log line")
