"""Registering model files and moving versions between stages.

The management commands are thin wrappers around these functions so that the
same rules (validation, content-addressed storage, one production version per
name) apply to anything else that registers models later.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xgboost
from django.db import IntegrityError, transaction

from inference_common.artifacts import CHUNK_BYTES, file_sha256
from inference_common.schema import STAGE_ARCHIVED, STAGE_PRODUCTION
from registry.models import ModelVersion, Stage

#: Formats ``Booster.save_model`` writes and the worker loads.
MODEL_EXTENSIONS = (".json", ".ubj")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_XGBOOST_LOCATION = re.compile(r"^\[[0-9:]+\] \S+:\d+: ")


class RegistryError(ValueError):
    """A model file or a registry request that cannot be accepted."""


@dataclass(frozen=True)
class BoosterInfo:
    """What the registry records about a booster, read from the booster itself."""

    feature_names: list[str]
    n_features: int
    objective: str
    n_outputs: int


@dataclass(frozen=True)
class Registration:
    """The outcome of ``register_model``: the new version and any version it replaced."""

    model_version: ModelVersion
    demoted: ModelVersion | None


def model_extension(path: Path) -> str:
    """The lower-cased extension of a supported model file; RegistryError otherwise."""
    extension = path.suffix.lower()
    if extension not in MODEL_EXTENSIONS:
        raise RegistryError(
            f"{path.name}: unsupported model file extension {extension or '(none)'!r}; "
            "save the booster with Booster.save_model() as .json or .ubj"
        )
    return extension


def inspect_booster(path: Path) -> BoosterInfo:
    """Load ``path`` as an XGBoost booster and read its inputs, objective and outputs."""
    model_extension(path)
    if not path.is_file():
        raise RegistryError(f"{path}: no such file")
    booster = xgboost.Booster()
    sample: np.ndarray | None = None
    try:
        booster.load_model(str(path))
        n_features = booster.num_features()
        config = json.loads(booster.save_config())
        objective = str(config["learner"]["objective"]["name"])
        if n_features >= 1:
            # One prediction on zeros tells the output width without parsing
            # trees: 2-D for multi:softprob and multi-target models, else 1-D.
            sample = booster.inplace_predict(np.zeros((1, n_features), dtype=np.float32))
    except (xgboost.core.XGBoostError, KeyError, TypeError, ValueError) as exc:
        # XGBoost errors carry a C++ stack trace and a "[time] file:line:" prefix.
        lines = str(exc).strip().splitlines()
        message = _XGBOOST_LOCATION.sub("", lines[0]) if lines else type(exc).__name__
        raise RegistryError(f"{path}: not a valid XGBoost model: {message}") from exc
    if n_features < 1 or sample is None:
        raise RegistryError(f"{path}: not a usable XGBoost model: it has no input features")
    feature_names = list(booster.feature_names or [f"f{index}" for index in range(n_features)])
    n_outputs = int(sample.shape[1]) if sample.ndim == 2 else 1
    return BoosterInfo(
        feature_names=feature_names, n_features=n_features, objective=objective, n_outputs=n_outputs
    )


def store_artifact(path: Path, store: Path) -> tuple[str, str]:
    """Copy ``path`` into ``store`` as ``<sha256><ext>``; return (file name, sha256).

    The copy goes to a temporary file first and is renamed into place, so a
    worker never opens a half-written artifact. An identical file already in
    the store is left as it is (artifacts are content-addressed).
    """
    extension = model_extension(path)
    sha256 = file_sha256(path)
    name = f"{sha256}{extension}"
    store.mkdir(parents=True, exist_ok=True)
    target = store / name
    if target.is_file() and file_sha256(target) == sha256:
        return name, sha256
    handle, temporary = tempfile.mkstemp(dir=store, prefix=f".{sha256}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out, path.open("rb") as source:
            shutil.copyfileobj(source, out, CHUNK_BYTES)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return name, sha256


def validate_version(version: str) -> str:
    """Return ``version`` if it is a usable version string; RegistryError otherwise."""
    if not VERSION_PATTERN.match(version):
        raise RegistryError(
            f"invalid version {version!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return version


def next_version(name: str) -> str:
    """One more than the highest all-digit version of ``name`` ("1" for a new name)."""
    versions = ModelVersion.objects.filter(name=name).values_list("version", flat=True)
    numbers = [int(version) for version in versions if version.isdigit()]
    return str(max(numbers, default=0) + 1)


def _demote_production(name: str, *, keep: ModelVersion | None = None) -> ModelVersion | None:
    """Archive the current production version of ``name`` (inside a transaction)."""
    current = ModelVersion.objects.select_for_update().filter(name=name, stage=STAGE_PRODUCTION)
    if keep is not None:
        current = current.exclude(pk=keep.pk)
    previous = current.first()
    if previous is not None:
        previous.stage = STAGE_ARCHIVED
        previous.save(update_fields=["stage"])
    return previous


def register_model(
    *,
    name: str,
    path: Path,
    store: Path,
    version: str | None = None,
    stage: str = Stage.STAGING,
    description: str = "",
    created_by: str = "",
) -> Registration:
    """Validate a booster file, store it and record a new version of ``name``.

    With ``stage="production"`` the current production version is archived in
    the same transaction, so there is never a moment with two (or, for a
    name that had one, zero) production versions.
    """
    if not name or len(name) > ModelVersion._meta.get_field("name").max_length:
        raise RegistryError("the model name must be 1-200 characters")
    if stage not in (Stage.PRODUCTION, Stage.STAGING):
        raise RegistryError(f"a new version starts in production or staging, not {stage!r}")
    if version is not None:
        validate_version(version)
        if ModelVersion.objects.filter(name=name, version=version).exists():
            raise RegistryError(f"{name} version {version} is already registered")
    info = inspect_booster(path)
    # Stored before the row exists: a failed insert leaves at worst an unused
    # content-addressed file, never a row pointing at a missing artifact.
    artifact_path, sha256 = store_artifact(path, store)
    # An automatic version can collide with a concurrent registration of the
    # same name; the unique constraint catches it and the next number is tried.
    attempts = 1 if version is not None else 3
    for attempt in range(1, attempts + 1):
        candidate = version or next_version(name)
        try:
            with transaction.atomic():
                demoted = _demote_production(name) if stage == Stage.PRODUCTION else None
                model_version = ModelVersion.objects.create(
                    name=name,
                    version=candidate,
                    stage=stage,
                    artifact_path=artifact_path,
                    sha256=sha256,
                    feature_names=info.feature_names,
                    n_features=info.n_features,
                    objective=info.objective,
                    n_outputs=info.n_outputs,
                    description=description,
                    created_by=created_by,
                )
        except IntegrityError as exc:
            if attempt == attempts:
                raise RegistryError(
                    f"could not register {name} version {candidate}: it was registered or promoted "
                    "concurrently; try again"
                ) from exc
            continue
        return Registration(model_version=model_version, demoted=demoted)
    raise AssertionError("unreachable")


def set_stage(model_version: ModelVersion, stage: str) -> ModelVersion | None:
    """Move ``model_version`` to ``stage``; returns the version it replaced in production.

    Promotion archives the previous production version in the same
    transaction; the partial unique index refuses a concurrent second one.
    """
    if stage not in Stage.values:
        raise RegistryError(f"unknown stage {stage!r}; choose one of {', '.join(Stage.values)}")
    try:
        with transaction.atomic():
            demoted = None
            if stage == Stage.PRODUCTION:
                demoted = _demote_production(model_version.name, keep=model_version)
            model_version.stage = stage
            model_version.save(update_fields=["stage"])
    except IntegrityError as exc:
        raise RegistryError(
            f"could not move {model_version.name} version {model_version.version} to {stage}: "
            "another version was promoted concurrently; try again"
        ) from exc
    return demoted
