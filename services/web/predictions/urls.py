"""Pages of the ``predictions`` app (mounted in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from predictions import views

app_name = "predictions"

urlpatterns: list[URLPattern] = [
    path("", views.prediction_list, name="list"),
    # Before the detail route: "export.csv" is not a request id.
    path("export.csv", views.prediction_export, name="export"),
    path("<str:request_id>/", views.prediction_detail, name="detail"),
]
