"""App configuration of the model registry."""

from __future__ import annotations

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """The ``registry`` app (table ``model_versions``)."""

    name = "registry"
    verbose_name = "Model registry"
