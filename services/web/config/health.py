"""Liveness and readiness endpoints for Kubernetes probes and load balancers.

``/healthz`` says the process serves requests; ``/readyz`` also checks the
database, so a pod that lost its database is taken out of the Service
instead of answering users with errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)


@login_not_required
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: 200 while the process can answer at all (no dependency checks)."""
    return HttpResponse("ok", content_type="text/plain")


def database_is_ready(alias: str = "default") -> bool:
    """Run ``SELECT 1`` on the database; False if it cannot be reached."""
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("readiness check failed: database %r unavailable: %s", alias, exc)
        # Drop the broken connection so the next probe reconnects instead of
        # reusing a persistent (CONN_MAX_AGE) connection that is dead.
        connection.close_if_unusable_or_obsolete()
        return False
    return True


@login_not_required
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: 200 when the database answers, 503 otherwise."""
    if database_is_ready():
        return HttpResponse("ok", content_type="text/plain")
    return HttpResponse("database unavailable", status=503, content_type="text/plain")


_PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class HealthCheckMiddleware:
    """Answer the probe paths before any other middleware runs.

    Kubelet probes address the pod by IP over plain http, so host validation
    (ALLOWED_HOSTS) and the production HTTPS redirect would reject or redirect
    them; sessions and auth are wasted work for a probe. Listing this first in
    MIDDLEWARE sidesteps all of that for exactly these two paths.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Serve a probe path directly; pass everything else down the stack."""
        probe = _PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            response = probe(request)
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)
