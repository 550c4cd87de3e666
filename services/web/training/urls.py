"""Pages of the ``training`` app (mounted in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "training"

urlpatterns: list[URLPattern] = []
