"""Pages of the ``apikeys`` app (mounted at ``/keys/`` in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from apikeys import views

app_name = "apikeys"

urlpatterns: list[URLPattern] = [
    path("", views.key_list, name="list"),
    path("new/", views.key_create, name="create"),
    path("<int:pk>/edit/", views.key_edit, name="edit"),
    path("<int:pk>/revoke/", views.key_revoke, name="revoke"),
]
