"""The inference api: a Flask app factory.

Nothing reads the environment at import time; ``create_app`` does, once per
process (gunicorn imports the factory in each worker after fork).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, request
from flask_limiter import Limiter

from inference_common.db import make_engine
from inference_common.telemetry import configure_tracing, instrument_celery

from . import concurrency, errors, health, inference, metrics, openapi, response_cache
from .auth import KeyStore
from .cache_audit import HitAuditWriter
from .config import ApiSettings
from .dispatch import Dispatcher
from .job_waits import JobWaiter
from .jobs import JobService
from .registry import Registry
from .services import Services

logger = logging.getLogger(__name__)

SERVICE_NAME = "api"


def _limit_key() -> str:
    principal = g.get("principal")
    return f"key:{principal.key_id}" if principal is not None else "anonymous"


def _limit_value() -> str:
    principal = g.get("principal")
    return f"{principal.rate_limit_per_minute}/minute" if principal is not None else "1000000/minute"


def _limit_exempt() -> bool:
    principal = g.get("principal")
    return principal is None or principal.rate_limit_per_minute <= 0


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the api. ``test_config`` overrides ``ApiSettings`` fields by name."""
    app = Flask(__name__)
    settings = ApiSettings.from_env()
    if test_config:
        settings = settings.with_overrides(test_config)
    app.config.from_prefixed_env()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    configure_tracing(SERVICE_NAME)
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    engine = make_engine(settings.database_url)
    dispatcher = Dispatcher(settings.broker_url, settings.queues, settings.max_coalesced)
    registry = Registry(engine, settings.cache_ttl_s)
    app.extensions["inference"] = Services(
        settings=settings,
        engine=engine,
        keys=KeyStore(engine, settings.cache_ttl_s),
        registry=registry,
        dispatcher=dispatcher,
        jobs=JobService(
            engine,
            dispatcher,
            settings.job_chunk_rows,
            JobWaiter(engine, settings.job_max_waiters if settings.job_max_wait_s > 0 else 0),
        ),
        response_cache=response_cache.ResponseCache(
            registry,
            HitAuditWriter(
                engine,
                buffer_rows=settings.cache_audit_buffer_rows,
                outputs_max_rows=settings.cache_audit_outputs_max_rows,
            ),
            redis_url=settings.cache_redis_url,
            key_prefix=settings.cache_key_prefix,
            timeout_s=settings.cache_redis_timeout_s,
            max_entry_bytes=settings.cache_max_entry_bytes,
        ),
    )

    FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,readyz,metrics,v2/health")
    instrument_celery()
    SQLAlchemyInstrumentor().instrument(engine=engine)

    metrics.init_app(app)
    response_cache.init_app(app)

    # Authentication must run before the rate limiter's own before_request
    # hook (registered by Limiter below), which keys limits on the caller.
    @app.before_request
    def _authenticate() -> None:
        if request.blueprint == inference.bp.name:
            g.principal = app.extensions["inference"].keys.authenticate(request.headers.get("Authorization"))

    concurrency.keep_retry_after(app)

    # Application limits share one counter per key across all routes; default
    # limits would count each route separately, multiplying a key's budget.
    limiter = Limiter(
        key_func=_limit_key,
        app=app,
        application_limits=[_limit_value],
        storage_uri=settings.ratelimit_storage_uri,
        headers_enabled=True,
    )
    # A request filter, not application_limits_exempt_when: it is checked before the limiter
    # resolves and filters its limits, which cost about a tenth of the api's CPU per request
    # even for keys without a limit.
    limiter.request_filter(_limit_exempt)
    # After the limiter: refused or unauthenticated requests never take a slot.
    concurrency.init_app(
        app, concurrency.InflightLimiter(settings.max_inflight, settings.max_inflight_per_key)
    )

    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(inference.bp)
    errors.register_error_handlers(app)
    return app
