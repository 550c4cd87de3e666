"""Pages of the ``registry`` app (mounted at ``/models/`` in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from registry import views
from responsecache import views as cache_views

app_name = "registry"

urlpatterns: list[URLPattern] = [
    path("", views.model_list, name="list"),
    # Before <name>/ so that "upload" is never read as a model name.
    path("upload/", views.upload, name="upload"),
    path("<str:name>/", views.model_detail, name="detail"),
    path("<str:name>/compare/", views.compare, name="compare"),
    path("<str:name>/rollback/", views.roll_back, name="rollback"),
    path("<str:name>/cache/", cache_views.policy, name="cache"),
    path("<str:name>/cache/clear/", cache_views.clear_answers, name="cache_clear"),
    path("<str:name>/versions/<str:version>/stage/", views.change_stage, name="stage"),
]
