"""One log format for every tier: JSON lines on stdout, with the current trace.

Every process (gunicorn masters and workers of the api and web, Celery workers
and their pool processes, the trainer, management commands) writes one JSON
object per line with the same keys::

    {"timestamp": "2025-01-01T12:00:00.123Z", "level": "INFO", "logger": "inference_api.dispatch",
     "message": "...", "service": "api", "trace_id": "4bf9...", "span_id": "00f0...",
     "process": 1234, ...extras}

``trace_id`` and ``span_id`` come from the active OpenTelemetry span (empty
strings outside one), so a log line leads to its trace and back. Fields passed
with ``logger.info(..., extra={...})`` are added as keys; an exception becomes
``"exception"``.

``LOG_FORMAT=text`` switches to one readable line per record for people
reading a terminal; ``LOG_LEVEL`` (debug, info, warning, error, critical)
sets the threshold. Both are read when logging is configured, never at import.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from .settings import env_choice

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("json", "text")

# Attributes every LogRecord has (plus those the formatting machinery adds);
# anything else on a record came from ``extra=`` and is written as a key.
_STANDARD_ATTRIBUTES = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "taskName"}
)
# Keys the formatter itself writes; an ``extra`` of the same name cannot replace them
# (trace_id and span_id can: the gunicorn access log passes the request's own).
_OWN_KEYS = frozenset({"timestamp", "level", "logger", "message", "service", "process", "exception"})


def service_name(default: str) -> str:
    """The service name of this process: ``OTEL_SERVICE_NAME`` if set, as on its spans."""
    return os.environ.get("OTEL_SERVICE_NAME", "").strip() or default


def log_level(default: str = "info") -> str:
    """``LOG_LEVEL`` in upper case (as ``logging`` spells levels); refuses unknown names."""
    return env_choice("LOG_LEVEL", default, LEVELS).upper()


def log_format() -> str:
    """``LOG_FORMAT``: ``json`` (the default, for collectors) or ``text`` (for people)."""
    return env_choice("LOG_FORMAT", "json", FORMATS)


def trace_ids(record: logging.LogRecord) -> tuple[str, str]:
    """Trace and span id (hex) of ``record``: its own if it carries them, else the current span's."""
    trace_id = getattr(record, "trace_id", None)
    span_id = getattr(record, "span_id", None)
    if trace_id is not None and span_id is not None:
        return str(trace_id), str(span_id)
    # Handlers format in the thread (and context) that logged, so the current
    # span is the one the record was written in.
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object (see the module docstring for its keys).

    Usable from ``logging.config.dictConfig`` (``"()": "inference_common.logs.JsonFormatter"``
    with ``service``), which is how Django's ``LOGGING`` and gunicorn's
    ``logconfig_dict`` install it.
    """

    def __init__(self, service: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Serialise ``record``; values JSON cannot hold are written with ``str``."""
        trace_id, span_id = trace_ids(record)
        payload: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "trace_id": trace_id,
            "span_id": span_id,
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and key not in _OWN_KEYS and not key.startswith("_"):
                payload.setdefault(key, value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        # One line per record even if a message holds newlines: json escapes them.
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One readable line per record (``LOG_FORMAT=text``), with the same service and trace id."""

    def __init__(self, service: str = "", **kwargs: Any) -> None:
        super().__init__(
            fmt="%(asctime)s %(levelname)-7s %(service)s %(name)s [%(trace_id)s] %(message)s", **kwargs
        )
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Fill in service and trace id (``-`` outside a trace), then format as usual."""
        trace_id, _ = trace_ids(record)
        record.service = self.service
        record.trace_id = trace_id or "-"
        try:
            return super().format(record)
        finally:
            # The record may reach other handlers: leave it as it came.
            del record.service
            record.__dict__.pop("trace_id", None)


def formatter_config(service: str) -> dict[str, Any]:
    """The ``dictConfig`` entry of this process's formatter (``LOG_FORMAT`` picks which)."""
    cls = JsonFormatter if log_format() == "json" else TextFormatter
    return {"()": f"{__name__}.{cls.__name__}", "service": service_name(service)}


def logging_config(service: str, level: str | None = None) -> dict[str, Any]:
    """A ``dictConfig`` dict: one stdout handler with our formatter on the root logger.

    Everything else propagates to the root: named loggers that frameworks give
    handlers of their own (Django's ``django`` and ``django.server``,
    gunicorn's ``gunicorn.error`` and ``gunicorn.access``) are reset to none,
    so each record is written exactly once, in one format.
    """
    level = (level or log_level()).upper()
    propagate: dict[str, Any] = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter_config(service)},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stdout"}
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "django": {**propagate, "level": level},
            "django.server": dict(propagate),
            "gunicorn.error": {**propagate, "level": level},
            "gunicorn.access": {**propagate, "level": "INFO"},
            "celery": dict(propagate),
        },
    }


def configure_logging(service: str, level: str | None = None) -> None:
    """Install the JSON (or text) formatter on the root logger, writing to stdout.

    ``service`` is the default name (``OTEL_SERVICE_NAME`` wins); ``level``
    defaults to ``LOG_LEVEL``. Python warnings are logged too, so that they
    are JSON lines like the rest.
    """
    logging.config.dictConfig(logging_config(service, level))
    logging.captureWarnings(True)


def _celery_level(loglevel: Any) -> str | None:
    # Celery passes --loglevel (a number or a name; 0 in pool processes when
    # unset). LOG_LEVEL, when set, wins so that one variable drives every tier.
    if os.environ.get("LOG_LEVEL"):
        return None
    if isinstance(loglevel, int) and loglevel > 0:
        return logging.getLevelName(loglevel)
    if isinstance(loglevel, str) and loglevel:
        return loglevel
    return None


def _on_celery_setup_logging(loglevel: Any = None, **_: Any) -> None:
    configure_logging(_celery_service, _celery_level(loglevel))


def _on_celery_worker_init(instance: Any = None, options: dict[str, Any] | None = None, **_: Any) -> None:
    # Sent before Celery checks privileges and warns, and before it sets up
    # logging: configure now so that those first lines are JSON too.
    configure_logging(_celery_service, _celery_level((options or {}).get("loglevel")))
    # The start-up banner is a multi-line text block printed to stdout; in JSON
    # mode it would be the only lines a collector cannot parse. Its content
    # (queues, concurrency) is in the worker's configuration anyway.
    if instance is not None and log_format() == "json":
        instance.quiet = True


_celery_service = "worker"


def install_celery_logging(service: str) -> None:
    """Make a Celery worker log through :func:`configure_logging`, in its main and pool processes.

    Connecting ``setup_logging`` stops Celery from installing its own handlers
    and formats on the root logger (and from redirecting stdout); Celery sends
    it in the main process and again in every prefork pool process.
    """
    from celery import signals

    global _celery_service
    _celery_service = service
    signals.setup_logging.connect(_on_celery_setup_logging, weak=False)
    signals.celeryd_init.connect(_on_celery_worker_init, weak=False)
