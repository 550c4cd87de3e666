"""The operations dashboard and the JSON its charts draw from."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dashboard.services import DEFAULT_WINDOW, WINDOWS, Window, queue_backlog, review_backlog, traffic


def _window(request: HttpRequest) -> Window:
    # An unknown ?window= falls back to the default rather than failing the page.
    return WINDOWS.get(request.GET.get("window", DEFAULT_WINDOW), WINDOWS[DEFAULT_WINDOW])


def dashboard_data(window: Window) -> dict[str, Any]:
    """Everything the dashboard shows, as JSON-serialisable data."""
    return {
        "generated_at": timezone.now().isoformat(),
        "traffic": traffic(window),
        "queues": queue_backlog(),
        "reviews": review_backlog(),
    }


@require_GET
@permission_required("predictions.view_predictionrecord", raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    """Charts (drawn by dashboard.js from data.json) and the same numbers as tables."""
    window = _window(request)
    return render(
        request,
        "dashboard/dashboard.html",
        {"window": window, "windows": list(WINDOWS), "data": dashboard_data(window)},
    )


@never_cache
@require_GET
@permission_required("predictions.view_predictionrecord", raise_exception=True)
def data_json(request: HttpRequest) -> JsonResponse:
    """The dashboard's numbers for ``?window=1h|6h|24h|7d``."""
    return JsonResponse(dashboard_data(_window(request)))
