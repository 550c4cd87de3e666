"""Pages of the ``apikeys`` app (mounted in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "apikeys"

urlpatterns: list[URLPattern] = []
