"""URL routes of the web service.

Each product area has its own app and ``urls.py``; this module only mounts
them. Every page needs a login (``LoginRequiredMiddleware``) and checks its own
permission.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from accounts.views import home
from config import health, metrics

admin.site.site_header = "Inference platform"
admin.site.site_title = "Inference platform admin"
admin.site.index_title = "Models, keys, predictions and jobs"

urlpatterns = [
    # Normally answered by HealthCheckMiddleware; routed too so reverse() works.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Normally answered by MetricsMiddleware (Prometheus scrapes the pod IP); routed for reverse().
    path("metrics", metrics.metrics, name="metrics"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("dashboard/", include("dashboard.urls")),
    # Before models/: training pages live under /models/train/.
    path("models/train/", include("training.urls")),
    path("models/", include("registry.urls")),
    path("keys/", include("apikeys.urls")),
    path("predictions/", include("predictions.urls")),
    path("reviews/", include("reviews.urls")),
    path("batches/", include("jobs.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
    path("", home, name="home"),
]
