"""Pages of the ``predictions`` app (mounted in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "predictions"

urlpatterns: list[URLPattern] = []
