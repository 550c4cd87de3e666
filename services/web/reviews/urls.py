"""Pages of the ``reviews`` app (mounted in ``config.urls``)."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "reviews"

urlpatterns: list[URLPattern] = []
