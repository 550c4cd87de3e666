"""Live statistics of model versions, read from the prediction audit log.

Every query is bounded (the newest ``MAX_RECORDS`` rows of a window) so
that the model pages stay fast on a busy installation; the pages say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Count

from inference_common.schema import ROUTE_SHADOW
from predictions.models import PredictionRecord
from registry.models import ModelVersion

#: Newest rows looked at per version and window.
MAX_RECORDS = 10_000
#: Outputs closer than this are the same answer (float32 noise across devices).
AGREEMENT_TOLERANCE = 1e-6
OK_STATUS = "ok"


@dataclass(frozen=True)
class VersionStats:
    """Traffic and quality of one version over a window."""

    requests: int
    p50_ms: float | None
    p95_ms: float | None
    error_rate: float | None
    mean_score: float | None
    truncated: bool


@dataclass(frozen=True)
class PairedStats:
    """A shadow (or canary copy) answering the same requests as the primary version."""

    pairs: int
    compared: int
    agreement: float | None
    mean_abs_diff: float | None
    primary_p50_ms: float | None
    primary_p95_ms: float | None
    shadow_p50_ms: float | None
    shadow_p95_ms: float | None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values`` (None when empty)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def score(outputs: Any) -> float | None:
    """One number per request: the mean output, or the mean top probability for multi-output rows."""
    if outputs is None:
        return None
    try:
        array = np.asarray(outputs, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.size == 0:
        return None
    value = float(array.max(axis=1).mean()) if array.ndim == 2 else float(array.mean())
    return value if math.isfinite(value) else None


def version_stats(model_version: ModelVersion, since: datetime) -> VersionStats:
    """Requests, latency percentiles, error rate and mean score of a version since ``since``."""
    rows = list(
        PredictionRecord.objects.filter(model_version=model_version, created_at__gte=since)
        .order_by("-created_at")
        .values_list("latency_ms", "status", "outputs")[: MAX_RECORDS + 1]
    )
    truncated = len(rows) > MAX_RECORDS
    rows = rows[:MAX_RECORDS]
    latencies = [latency for latency, _, _ in rows if latency is not None]
    scores = [value for value in (score(outputs) for _, _, outputs in rows) if value is not None]
    errors = sum(1 for _, status, _ in rows if status != OK_STATUS)
    return VersionStats(
        requests=len(rows),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        error_rate=errors / len(rows) if rows else None,
        mean_score=float(np.mean(scores)) if scores else None,
        truncated=truncated,
    )


def outputs_agree(primary: Any, shadow: Any, *, classifier: bool) -> tuple[bool, float] | None:
    """(agree, max abs diff) of two stored outputs; None when they cannot be compared."""
    try:
        first = np.asarray(primary, dtype=np.float64)
        second = np.asarray(shadow, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if first.shape != second.shape or first.size == 0:
        return None
    diff = float(np.abs(first - second).max())
    if diff <= AGREEMENT_TOLERANCE:
        return True, diff
    if not classifier:
        return False, diff
    # Same decision: the arg-max class of each row, or the 0.5 side for binary probabilities.
    if first.ndim == 2:
        same = bool(np.array_equal(first.argmax(axis=1), second.argmax(axis=1)))
    else:
        same = bool(np.array_equal(first > 0.5, second > 0.5))
    return same, diff


def _is_classifier(*versions: ModelVersion) -> bool:
    return all(version.objective.startswith(("binary:", "multi:")) for version in versions)


def paired_stats(shadow: ModelVersion, primary: ModelVersion, since: datetime) -> PairedStats:
    """Compare the shadow copies of ``shadow`` with the answers ``primary`` gave the clients.

    A shadow record names the request it copies in ``shadow_of``; records
    whose outputs were not stored (large requests) are compared by digest.
    """
    copies = list(
        PredictionRecord.objects.filter(model_version=shadow, route=ROUTE_SHADOW, created_at__gte=since)
        .exclude(shadow_of="")
        .order_by("-created_at")
        .values_list("shadow_of", "outputs", "outputs_digest", "latency_ms")[:MAX_RECORDS]
    )
    originals: dict[str, tuple[Any, str, float]] = {}
    request_ids = [request_id for request_id, _, _, _ in copies]
    for start in range(0, len(request_ids), 1000):
        for request_id, outputs, digest, latency in PredictionRecord.objects.filter(
            request_id__in=request_ids[start : start + 1000], model_version=primary
        ).values_list("request_id", "outputs", "outputs_digest", "latency_ms"):
            originals[request_id] = (outputs, digest, latency)
    classifier = _is_classifier(shadow, primary)
    agreed = compared = 0
    diffs: list[float] = []
    shadow_latency: list[float] = []
    primary_latency: list[float] = []
    for request_id, outputs, digest, latency in copies:
        original = originals.get(request_id)
        if original is None:
            continue
        shadow_latency.append(latency)
        primary_latency.append(original[2])
        verdict = outputs_agree(original[0], outputs, classifier=classifier)
        if verdict is not None:
            compared += 1
            agreed += verdict[0]
            diffs.append(_mean_abs_diff(original[0], outputs))
        elif digest and original[1]:
            compared += 1
            agreed += digest == original[1]
    return PairedStats(
        pairs=len(shadow_latency),
        compared=compared,
        agreement=agreed / compared if compared else None,
        mean_abs_diff=float(np.mean(diffs)) if diffs else None,
        primary_p50_ms=percentile(primary_latency, 50),
        primary_p95_ms=percentile(primary_latency, 95),
        shadow_p50_ms=percentile(shadow_latency, 50),
        shadow_p95_ms=percentile(shadow_latency, 95),
    )


def _mean_abs_diff(first: Any, second: Any) -> float:
    return float(np.abs(np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)).mean())


def requests_since(versions: Iterable[ModelVersion], since: datetime) -> dict[int, int]:
    """Version id -> number of prediction records since ``since`` (one grouped query)."""
    ids = [version.pk for version in versions]
    rows = (
        PredictionRecord.objects.filter(model_version_id__in=ids, created_at__gte=since)
        .values("model_version_id")
        .annotate(total=Count("id"))
        .values_list("model_version_id", "total")
    )
    return dict(rows)
