"""Read-only view of the model registry that Django owns, and request routing.

``production`` decides which version an unversioned request uses, except that
a ``canary`` version takes its ``traffic_percent`` share of them, and a
``shadow`` version receives a copy of each (its answers are only recorded).
A request that names its version is pinned to it: no canary, no shadow.

Lookups are cached for ``API_CACHE_TTL_S`` so the hot path does not query the
database for every request; a stage or traffic change made in the web tier
therefore takes effect within one ttl.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from inference_common.schema import (
    ROUTE_CANARY,
    ROUTE_PINNED,
    ROUTE_PRODUCTION,
    STAGE_CANARY,
    STAGE_PRODUCTION,
    STAGE_SHADOW,
    model_versions,
    response_cache_policies,
)

from .cache import TTLCache
from .errors import ApiError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the api needs to validate and route a request for one version."""

    id: int
    name: str
    version: str
    stage: str
    n_features: int
    n_outputs: int
    objective: str
    feature_names: tuple[str, ...]
    traffic_percent: int = 0

    @property
    def output_shape(self) -> list[int]:
        """Per-request output shape with ``-1`` for the row count."""
        return [-1, self.n_outputs] if self.n_outputs > 1 else [-1]


@dataclass(frozen=True)
class CachePolicy:
    """A model name's response cache policy (``response_cache_policies``, managed in the web tier)."""

    enabled: bool
    ttl_s: int
    max_entries: int
    #: Part of every cache key; bumped by the web tier when the serving versions change.
    generation: int


@dataclass(frozen=True)
class Route:
    """The version that answers a request, how it was chosen, and a shadow to copy it to."""

    model: ModelInfo
    route: str
    shadow: ModelInfo | None = None


def process_draw() -> Callable[[], float]:
    """A uniform [0, 1) draw seeded from ``os.urandom``.

    Each api process builds its own after fork, so processes never share a
    sequence and the canary share holds across the whole fleet.
    """
    return random.Random(os.urandom(16)).random


class Registry:
    """Resolves model names, versions and routes, raising 404s with clear messages.

    ``draw`` returns a uniform number in [0, 1) per unversioned request; unit
    tests inject a fixed sequence to make canary routing deterministic.
    """

    def __init__(self, engine: Engine, ttl: float, draw: Callable[[], float] | None = None) -> None:
        self._engine = engine
        self._cache: TTLCache[tuple[ModelInfo, ...]] = TTLCache(ttl, self._load)
        self._policies: TTLCache[CachePolicy | None] = TTLCache(ttl, self._load_policy)
        self._draw = draw or process_draw()
        # random.Random is not safe to share between gthread request threads.
        self._draw_lock = threading.Lock()
        self._warned: set[tuple[int, int]] = set()

    def _load(self, name: Hashable) -> tuple[ModelInfo, ...]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(model_versions).where(model_versions.c.name == name).order_by(model_versions.c.id)
            ).all()
        return tuple(
            ModelInfo(
                id=row.id,
                name=row.name,
                version=row.version,
                stage=row.stage,
                n_features=row.n_features,
                n_outputs=row.n_outputs,
                objective=row.objective,
                feature_names=tuple(row.feature_names or ()),
                traffic_percent=row.traffic_percent or 0,
            )
            for row in rows
        )

    def _load_policy(self, name: Hashable) -> CachePolicy | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(response_cache_policies).where(response_cache_policies.c.model_name == name)
            ).first()
        if row is None:
            return None
        return CachePolicy(
            enabled=row.enabled, ttl_s=row.ttl_s, max_entries=row.max_entries, generation=row.generation
        )

    def cache_policy(self, name: str) -> CachePolicy | None:
        """The response cache policy of ``name`` when one is set and enabled, else None.

        Cached like the versions, so a policy change or a promotion's new
        generation reaches the api within the same ttl as the stage change.
        """
        policy = self._policies.get(name)
        return policy if policy is not None and policy.enabled else None

    def versions(self, name: str) -> tuple[ModelInfo, ...]:
        """All registered versions of ``name``; 404 if there are none."""
        found = self._cache.get(name)
        if not found:
            raise ApiError(404, "model_not_found", f"model '{name}' is not registered")
        return found

    def resolve(self, name: str, version: str | None = None) -> ModelInfo:
        """The requested version, or the production one when ``version`` is None."""
        candidates = self.versions(name)
        if version is None:
            for info in candidates:
                if info.stage == STAGE_PRODUCTION:
                    return info
            raise ApiError(
                404,
                "no_production_version",
                f"model '{name}' has no production version; request a version explicitly or promote one",
            )
        for info in candidates:
            if info.version == version:
                return info
        known = ", ".join(info.version for info in candidates)
        raise ApiError(
            404, "version_not_found", f"model '{name}' has no version '{version}' (known: {known})"
        )

    def route(self, name: str, version: str | None = None) -> Route:
        """Choose the version that answers a sync request, and the shadow to copy it to.

        A named version is pinned. Otherwise the production version answers,
        except that a canary with ``traffic_percent`` p answers a random p% of
        requests. A canary or shadow whose feature count differs from
        production's is skipped (and logged once): the client's rows were
        validated against production's shape.
        """
        if version is not None:
            return Route(self.resolve(name, version), ROUTE_PINNED)
        production = self.resolve(name)
        canary = shadow = None
        for info in self.versions(name):
            if info.stage == STAGE_CANARY:
                canary = self._compatible(production, info)
            elif info.stage == STAGE_SHADOW:
                shadow = self._compatible(production, info)
        if canary is not None and canary.traffic_percent > 0:
            with self._draw_lock:
                draw = self._draw()
            if draw * 100 < canary.traffic_percent:
                return Route(canary, ROUTE_CANARY, shadow)
        return Route(production, ROUTE_PRODUCTION, shadow)

    def _compatible(self, production: ModelInfo, other: ModelInfo) -> ModelInfo | None:
        if other.n_features == production.n_features:
            return other
        key = (production.id, other.id)
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(
                "ignoring %s %s v%s: it takes %d features, production v%s takes %d",
                other.stage,
                other.name,
                other.version,
                other.n_features,
                production.version,
                production.n_features,
            )
        return None
