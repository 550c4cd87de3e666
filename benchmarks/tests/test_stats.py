"""The harness's statistics: percentiles and ratios must be right before any number is reported."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.stats import mean_ci, median_run, percentile, ratio, summarize


def test_it_matches_numpy_percentiles_on_uneven_samples() -> None:
    rng = np.random.default_rng(7)
    values = [*rng.exponential(size=101).tolist(), 50.0]
    for q in (0, 1, 50, 90, 99, 99.9, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_it_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0], 99) == 10.0


def test_it_reports_an_empty_sample_as_missing_not_as_zero() -> None:
    assert math.isnan(percentile([], 50))


def test_it_rejects_a_percentile_outside_0_to_100() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_it_gives_no_ratio_against_zero_or_missing() -> None:
    assert ratio(6.0, 3.0) == 2.0
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 2.0))


def test_it_counts_only_answered_requests_as_throughput() -> None:
    stats = summarize([0.010, 0.020, 0.030, 0.040], errors=6, dropped=1, duration_s=2.0, offered_rps=5.0)
    assert stats.achieved_rps == 2.0
    assert stats.sent == 10
    assert stats.p50_ms == pytest.approx(25.0)
    assert stats.max_ms == pytest.approx(40.0)
    assert stats.as_dict()["dropped"] == 1


def test_the_confidence_interval_matches_a_hand_computed_t_interval() -> None:
    # mean 10, sample sd 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3) = 4.303 / 1.732
    mean, half = mean_ci([9.0, 10.0, 11.0])
    assert mean == 10.0
    assert half == pytest.approx(4.303 / math.sqrt(3))


def test_one_value_has_no_interval_and_nan_values_are_left_out() -> None:
    mean, half = mean_ci([5.0, math.nan])
    assert mean == 5.0
    assert math.isnan(half)
    assert all(math.isnan(v) for v in mean_ci([]))


def test_a_repeated_job_is_reported_by_its_median_run_with_every_time_kept() -> None:
    runs = [{"seconds": 0.9, "id": "a"}, {"seconds": 0.3, "id": "b"}, {"seconds": 0.5, "id": "c"}]

    assert median_run(runs) == {"seconds": 0.5, "id": "c", "runs_s": [0.3, 0.5, 0.9]}
    assert median_run(runs[:2])["id"] == "a"
