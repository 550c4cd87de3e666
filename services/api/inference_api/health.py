"""Liveness and readiness: ``/healthz``, ``/readyz`` and the v2 health endpoints."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

bp = Blueprint("health", __name__)

#: Readiness is cached briefly so frequent probes do not hammer the backends.
READY_CACHE_S = 1.0


def _check() -> dict[str, bool]:
    services = current_app.extensions["inference"]
    checks = {"broker": services.dispatcher.ready}
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    return checks


def is_ready() -> tuple[bool, dict[str, bool]]:
    """Whether the broker and database are reachable (a success is cached for a second)."""
    # Kept per app, so one app's answer is never served for another's backends.
    last = current_app.extensions.setdefault("readiness", {"at": 0.0, "checks": {}})
    now = time.monotonic()
    if not (now - last["at"] < READY_CACHE_S and last["checks"] and all(last["checks"].values())):
        last.update(at=now, checks=_check())
    checks = dict(last["checks"])
    return all(checks.values()), checks


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and serving HTTP."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready to accept work: the broker and the database answer."""
    ok, checks = is_ready()
    return jsonify(status="ready" if ok else "unavailable", checks=checks), 200 if ok else 503


@bp.get("/v2/health/live")
def v2_live() -> Response:
    """Open Inference Protocol liveness."""
    return jsonify(live=True)


@bp.get("/v2/health/ready")
def v2_ready() -> tuple[Response, int]:
    """Open Inference Protocol readiness."""
    ok, _ = is_ready()
    return jsonify(ready=ok), 200 if ok else 503
