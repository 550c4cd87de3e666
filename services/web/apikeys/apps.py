"""App configuration of the API keys."""

from __future__ import annotations

from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    """The ``apikeys`` app (table ``api_keys``)."""

    name = "apikeys"
    verbose_name = "API keys"
