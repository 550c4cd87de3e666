"""Pages of the ``dashboard`` app (mounted in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from dashboard import views

app_name = "dashboard"

urlpatterns: list[URLPattern] = [
    path("", views.dashboard, name="index"),
    path("data.json", views.data_json, name="data"),
]
