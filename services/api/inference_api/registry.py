"""Read-only view of the model registry that Django owns.

``production`` decides which version an unversioned request uses. Lookups
are cached for ``API_CACHE_TTL_S`` so the hot path does not query the
database for every request.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from inference_common.schema import STAGE_PRODUCTION, model_versions

from .cache import TTLCache
from .errors import ApiError


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

    @property
    def output_shape(self) -> list[int]:
        """Per-request output shape with ``-1`` for the row count."""
        return [-1, self.n_outputs] if self.n_outputs > 1 else [-1]


class Registry:
    """Resolves model names and versions, raising 404s with clear messages."""

    def __init__(self, engine: Engine, ttl: float) -> None:
        self._engine = engine
        self._cache: TTLCache[tuple[ModelInfo, ...]] = TTLCache(ttl, self._load)

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
            )
            for row in rows
        )

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
