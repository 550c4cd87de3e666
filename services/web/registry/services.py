"""Registering model files and moving versions between stages.

The management commands are thin wrappers around these functions so that the
same rules (validation, content-addressed storage, one production version per
name) apply to anything else that registers models later.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from audit.models import AuditEvent, Source
from audit.services import record
from inference_common.artifacts import CHUNK_BYTES, file_sha256
from inference_common.drift import SOURCE_FILE, BaselineError, build_baseline, validate_baseline
from jobs.csvdata import CsvError, read_numeric
from registry.models import ModelVersion, Stage
from responsecache.services import invalidate as invalidate_cached_answers

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


def _move(
    model_version: ModelVersion,
    stage: str,
    *,
    actor: str,
    source: str,
    traffic_percent: int = 0,
    **detail: Any,
) -> None:
    """Change one row's stage (inside a transaction) and record who did it."""
    previous = model_version.stage
    model_version.stage = stage
    # Only a canary takes a share of traffic; any other stage serves none.
    model_version.traffic_percent = traffic_percent if stage == Stage.CANARY else 0
    model_version.stage_changed_at = timezone.now()
    model_version.stage_changed_by = actor
    model_version.save(update_fields=["stage", "traffic_percent", "stage_changed_at", "stage_changed_by"])
    # What answers the name changed: the api must not serve answers cached before.
    invalidate_cached_answers(model_version.name)
    record(
        "model.stage",
        model_version,
        actor=actor,
        source=source,
        name=model_version.name,
        version=model_version.version,
        **{"from": previous, "to": stage},
        traffic_percent=model_version.traffic_percent,
        **detail,
    )


def _vacate(
    name: str,
    stage: str,
    *,
    keep: ModelVersion | None,
    to: str,
    actor: str,
    source: str,
    replaced_by: str,
) -> ModelVersion | None:
    """Move the version of ``name`` holding single-holder ``stage`` to ``to`` (inside a transaction)."""
    current = ModelVersion.objects.select_for_update().filter(name=name, stage=stage)
    if keep is not None:
        current = current.exclude(pk=keep.pk)
    previous = current.first()
    if previous is not None:
        _move(previous, to, actor=actor, source=source, replaced_by=replaced_by)
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
    metrics: dict[str, float] | None = None,
    actor: str | None = None,
    source: str = Source.SYSTEM,
    baseline: dict[str, Any] | None = None,
) -> Registration:
    """Validate a booster file, store it and record a new version of ``name``.

    With ``stage="production"`` the current production version is archived in
    the same transaction, so there is never a moment with two (or, for a
    name that had one, zero) production versions. ``actor`` defaults to
    ``created_by``; the registration and any demotion are audited.
    ``baseline`` (from ``compute_baseline``) is the drift baseline stored
    with the version; without one, the workers build it from the first
    rows they serve.
    """
    actor = created_by if actor is None else actor
    if not name or len(name) > ModelVersion._meta.get_field("name").max_length:
        raise RegistryError("the model name must be 1-200 characters")
    if stage not in (Stage.PRODUCTION, Stage.STAGING):
        raise RegistryError(f"a new version starts in production or staging, not {stage!r}")
    if version is not None:
        validate_version(version)
        if ModelVersion.objects.filter(name=name, version=version).exists():
            raise RegistryError(f"{name} version {version} is already registered")
    metrics = validate_metrics(metrics or {})
    info = inspect_booster(path)
    if baseline is not None:
        try:
            validate_baseline(baseline, info.feature_names)
        except BaselineError as exc:
            raise RegistryError(f"drift baseline: {exc}") from exc
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
                demoted = None
                if stage == Stage.PRODUCTION:
                    demoted = _vacate(
                        name,
                        Stage.PRODUCTION,
                        keep=None,
                        to=Stage.ARCHIVED,
                        actor=actor,
                        source=source,
                        replaced_by=candidate,
                    )
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
                    metrics=metrics,
                    baseline=baseline,
                    stage_changed_at=timezone.now(),
                    stage_changed_by=actor,
                )
                record(
                    "model.register",
                    model_version,
                    actor=actor,
                    source=source,
                    name=name,
                    version=candidate,
                    stage=stage,
                    sha256=sha256,
                    baseline=baseline["source"] if baseline else "",
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


def compute_baseline(path: Path, rows: np.ndarray, source: str) -> dict[str, Any]:
    """The drift baseline of the booster at ``path`` for reference ``rows`` (in its feature order).

    The outputs come from the booster itself, on the same float32 rows the
    workers would predict, so the output score's bins match what they see.
    """
    info = inspect_booster(path)
    matrix = np.asarray(rows, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != info.n_features:
        raise RegistryError(f"baseline rows need {info.n_features} columns, one per model feature")
    booster = xgboost.Booster(model_file=str(path))
    booster.set_param({"nthread": 1})
    try:
        outputs = booster.inplace_predict(matrix, validate_features=False)
        return build_baseline(matrix, outputs, info.feature_names, source)
    except (BaselineError, xgboost.core.XGBoostError) as exc:
        raise RegistryError(f"cannot build a drift baseline: {str(exc).strip().splitlines()[0]}") from exc


def baseline_from_csv(csv_path: Path, model_path: Path) -> dict[str, Any]:
    """A ``file`` baseline from a CSV whose header names the model's features (extra columns ignored).

    Empty cells are missing values, as in a prediction request; a missing
    feature column is refused with the names the file does have.
    """
    info = inspect_booster(model_path)
    try:
        with csv_path.open("rb") as handle:
            table = read_numeric(handle, info.feature_names, allow_missing=True)
    except OSError as exc:
        raise RegistryError(f"cannot read the baseline file {csv_path}: {exc.strerror or exc}") from exc
    except CsvError as exc:
        raise RegistryError(f"baseline file {csv_path.name}: {exc}") from exc
    return compute_baseline(model_path, table.matrix, SOURCE_FILE)


def validate_metrics(metrics: Any) -> dict[str, float]:
    """Return ``metrics`` if it is an object of metric name -> finite number; RegistryError otherwise."""
    if not isinstance(metrics, dict):
        raise RegistryError("metrics must be a JSON object of metric name -> number")
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        # bool is an int subclass, but true/false is not a metric value.
        if not isinstance(key, str) or not key or isinstance(value, bool):
            raise RegistryError(f"metric {key!r}: names must be text and values numbers")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RegistryError(f"metric {key!r}: value {value!r} is not a finite number")
        clean[key] = value
    return clean


def set_stage(
    model_version: ModelVersion,
    stage: str,
    *,
    traffic_percent: int | None = None,
    actor: str = "",
    source: str = Source.SYSTEM,
    **detail: Any,
) -> ModelVersion | None:
    """Move ``model_version`` to ``stage``; returns the version it replaced in production.

    Rules, applied in one transaction and audited row by row:

    - production archives the previous production version (a canary or
      shadow being promoted leaves that stage by becoming production);
    - canary needs ``traffic_percent`` 1-100 and sends any other canary of the
      name back to staging; calling it on the canary changes its share;
    - shadow sends any other shadow of the name back to staging.

    The partial unique indexes refuse a concurrent second holder of a stage.
    """
    if stage not in Stage.values:
        raise RegistryError(f"unknown stage {stage!r}; choose one of {', '.join(Stage.values)}")
    percent = 0
    if stage == Stage.CANARY:
        if traffic_percent is None or not 1 <= int(traffic_percent) <= 100:
            raise RegistryError("a canary needs a traffic percentage between 1 and 100")
        percent = int(traffic_percent)
    elif traffic_percent:
        raise RegistryError(f"only a canary takes a traffic percentage, not a {stage} version")
    label = f"{model_version.name} v{model_version.version}"
    try:
        with transaction.atomic():
            demoted = None
            if stage == Stage.PRODUCTION:
                demoted = _vacate(
                    model_version.name,
                    Stage.PRODUCTION,
                    keep=model_version,
                    to=Stage.ARCHIVED,
                    actor=actor,
                    source=source,
                    replaced_by=model_version.version,
                )
            elif stage in (Stage.CANARY, Stage.SHADOW):
                _vacate(
                    model_version.name,
                    stage,
                    keep=model_version,
                    to=Stage.STAGING,
                    actor=actor,
                    source=source,
                    replaced_by=model_version.version,
                )
            _move(model_version, stage, actor=actor, source=source, traffic_percent=percent, **detail)
    except IntegrityError as exc:
        raise RegistryError(
            f"could not move {label} to {stage}: another version was moved concurrently; try again"
        ) from exc
    return demoted


def previous_production(name: str) -> ModelVersion | None:
    """The version of ``name`` most recently in production, other than the current one.

    Read from the audit trail (promotions and registrations straight into
    production), newest first; versions deleted since are skipped.
    """
    current = ModelVersion.objects.filter(name=name, stage=Stage.PRODUCTION).first()
    events = AuditEvent.objects.filter(object_type=ModelVersion._meta.label_lower, detail__name=name).filter(
        models.Q(action="model.stage", detail__to=Stage.PRODUCTION)
        | models.Q(action="model.register", detail__stage=Stage.PRODUCTION)
    )
    seen: set[str] = set()
    for object_id in events.order_by("-created_at", "-id").values_list("object_id", flat=True)[:1000]:
        if object_id in seen or (current is not None and object_id == str(current.pk)):
            continue
        seen.add(object_id)
        candidate = ModelVersion.objects.filter(pk=object_id, name=name).first()
        if candidate is not None:
            return candidate
    return None


def rollback(name: str, *, actor: str = "", source: str = Source.SYSTEM) -> ModelVersion:
    """Put the previous production version of ``name`` back into production; return it.

    The current production version is archived in the same transaction.
    """
    with transaction.atomic():
        # Serialise concurrent roll-backs and promotions of the same name.
        list(ModelVersion.objects.select_for_update().filter(name=name))
        target = previous_production(name)
        if target is None:
            raise RegistryError(f"{name} has no earlier production version to roll back to")
        set_stage(target, Stage.PRODUCTION, actor=actor, source=source, rollback=True)
    return target
