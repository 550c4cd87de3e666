"""Template context shared by every product page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

#: Navigation entries: (label, path, permission needed to see it).
NAVIGATION = (
    ("Dashboard", "/dashboard/", "predictions.view_predictionrecord"),
    ("Models", "/models/", "registry.view_modelversion"),
    ("Predictions", "/predictions/", "predictions.view_predictionrecord"),
    ("Reviews", "/reviews/", "reviews.view_reviewitem"),
    ("Batches", "/batches/", "jobs.view_job"),
    ("API keys", "/keys/", "apikeys.view_apikey"),
)


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The navigation entries the signed-in user may open, marking the current one."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"navigation": []}
    entries = [
        {"label": label, "path": path, "active": request.path.startswith(path)}
        for label, path, permission in NAVIGATION
        if user.has_perm(permission)
    ]
    return {"navigation": entries, "roles": sorted(user.groups.values_list("name", flat=True))}
