"""Pages of the ``training`` app (mounted in ``config.urls`` at /models/train/)."""

from __future__ import annotations

from django.urls import URLPattern, path

from training import views

app_name = "training"

urlpatterns: list[URLPattern] = [
    path("", views.run_list, name="list"),
    path("new/", views.run_new, name="new"),
    path("<int:run_id>/", views.run_detail, name="detail"),
    path("<int:run_id>/status.json", views.run_status, name="status"),
]
