"""Statistics of a benchmark point: latency percentiles, throughput and the ratios the report states."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks (numpy's default).

    NaN for no values, so an empty point shows as missing rather than as a fast one.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


#: Two-sided 95% Student t quantiles by degrees of freedom (1-10); beyond, the normal 1.96 is close.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t); NaN half-width for one value."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, math.nan
    variance = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    t = _T95.get(len(finite) - 1, 1.96)
    return mean, t * math.sqrt(variance / len(finite))


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; NaN when either is missing (NaN) or the denominator is 0."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


@dataclass(frozen=True)
class PointStats:
    """What one load point measured: offered and achieved rates, errors and latency percentiles (ms)."""

    offered_rps: float
    achieved_rps: float
    sent: int
    ok: int
    errors: int
    dropped: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def summarize(
    latencies_s: Sequence[float], errors: int, dropped: int, duration_s: float, offered_rps: float
) -> PointStats:
    """Summarize one point: ``latencies_s`` of the successful requests, over ``duration_s`` of sending.

    Achieved rate counts successful answers only: an error is not throughput.
    """
    ms = [value * 1000 for value in latencies_s]
    ok = len(ms)
    return PointStats(
        offered_rps=offered_rps,
        achieved_rps=ok / duration_s if duration_s > 0 else math.nan,
        sent=ok + errors,
        ok=ok,
        errors=errors,
        dropped=dropped,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=max(ms) if ms else math.nan,
    )


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median ``seconds`` (the slower middle one of an even count), with every run's
    seconds, fastest first, in ``runs_s``."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    return {**ordered[len(ordered) // 2], "runs_s": [run["seconds"] for run in ordered]}
