"""Pages of the ``dashboard`` app (mounted in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "dashboard"

urlpatterns: list[URLPattern] = []
