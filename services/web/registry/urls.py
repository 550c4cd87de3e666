"""Pages of the ``registry`` app (mounted at ``/models/`` in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from registry import views

app_name = "registry"

urlpatterns: list[URLPattern] = [
    path("", views.model_list, name="list"),
    # Before <name>/ so that "upload" is never read as a model name.
    path("upload/", views.upload, name="upload"),
    path("<str:name>/", views.model_detail, name="detail"),
    path("<str:name>/compare/", views.compare, name="compare"),
    path("<str:name>/rollback/", views.roll_back, name="rollback"),
    path("<str:name>/versions/<str:version>/stage/", views.change_stage, name="stage"),
]
