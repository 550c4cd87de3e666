"""Pages of the ``registry`` app (mounted in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "registry"

urlpatterns: list[URLPattern] = []
