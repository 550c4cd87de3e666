"""The api's response cache, as a per-model-name policy managed here."""

from __future__ import annotations

from django.apps import AppConfig


class ResponseCacheConfig(AppConfig):
    """The ``responsecache`` app: which models the api answers repeated inputs for from Redis."""

    name = "responsecache"
    verbose_name = "Response cache"
