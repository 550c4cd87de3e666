"""URL routes of the web service."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from config import health

admin.site.site_header = "Inference platform"
admin.site.site_title = "Inference platform admin"
admin.site.index_title = "Models, keys, predictions and jobs"

urlpatterns = [
    # Normally answered by HealthCheckMiddleware; routed too so reverse() works.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path(settings.ADMIN_URL, admin.site.urls),
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
]
