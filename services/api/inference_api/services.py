"""The per-process objects the routes use, created by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Engine

from .auth import KeyStore
from .config import ApiSettings
from .dispatch import Dispatcher
from .jobs import JobService
from .registry import Registry
from .response_cache import ResponseCache


@dataclass
class Services:
    """Database engine, key store, registry view, broker dispatcher, jobs and the response cache."""

    settings: ApiSettings
    engine: Engine
    keys: KeyStore
    registry: Registry
    dispatcher: Dispatcher
    jobs: JobService
    response_cache: ResponseCache


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions["inference"]
