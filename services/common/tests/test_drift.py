"""Drift baselines and PSI: the numbers the worker's drift gauges and alert rest on."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from inference_common.drift import (
    BASELINE_FORMAT,
    OUTPUT_FEATURE,
    BaselineError,
    bin_counts,
    bin_counts_columns,
    bin_edges,
    build_baseline,
    feature_psi,
    output_scores,
    proportions,
    psi,
    psi_rows,
    validate_baseline,
)

NAMES = ["age", "income", "score"]


def _sample(rng: np.random.Generator, n: int = 5000, shift: float = 0.0) -> np.ndarray:
    rows = rng.normal(size=(n, 3)) * [10.0, 1000.0, 1.0] + [40.0, 5000.0, 0.0]
    return rows + shift * np.array([10.0, 1000.0, 1.0])


@pytest.fixture
def baseline() -> dict:
    rng = np.random.default_rng(1)
    rows = _sample(rng)
    return build_baseline(rows, rows[:, 2], NAMES, "file")


def test_it_describes_every_feature_in_column_order_and_the_output(baseline: dict) -> None:
    assert baseline["format"] == BASELINE_FORMAT
    assert baseline["source"] == "file"
    assert baseline["n_rows"] == 5000
    assert [entry["name"] for entry in baseline["features"]] == NAMES
    assert baseline["output"]["name"] == OUTPUT_FEATURE
    for entry in [*baseline["features"], baseline["output"]]:
        assert len(entry["edges"]) == 9
        assert len(entry["expected"]) == len(entry["edges"]) + 2
        assert sum(entry["expected"]) == pytest.approx(1.0, abs=1e-5)
        # Deciles: about a tenth of the rows per value bin, none missing.
        assert all(share == pytest.approx(0.1, abs=0.01) for share in entry["expected"][:-1])
        assert entry["expected"][-1] == 0.0


def test_it_is_plain_json_that_round_trips(baseline: dict) -> None:
    assert json.loads(json.dumps(baseline)) == baseline
    assert validate_baseline(json.loads(json.dumps(baseline)), NAMES) is not None


def test_it_scores_the_same_distribution_near_zero(baseline: dict) -> None:
    fresh = _sample(np.random.default_rng(2))
    for i, entry in enumerate(baseline["features"]):
        assert feature_psi(entry, fresh[:, i]) < 0.02


def test_it_scores_a_one_standard_deviation_shift_above_the_alert_threshold(baseline: dict) -> None:
    shifted = _sample(np.random.default_rng(3), shift=1.0)
    for i, entry in enumerate(baseline["features"]):
        assert feature_psi(entry, shifted[:, i]) > 0.25


def test_it_handles_a_constant_feature_in_both_directions() -> None:
    rows = np.column_stack([np.full(1000, 3.0), np.random.default_rng(4).normal(size=1000)])
    baseline = build_baseline(rows, rows[:, 1], ["const", "x"], "training")
    const = baseline["features"][0]
    assert feature_psi(const, np.full(500, 3.0)) == pytest.approx(0.0)
    assert feature_psi(const, np.full(500, 4.0)) > 1.0
    assert feature_psi(const, np.full(500, 2.0)) > 1.0


def test_it_counts_missing_values_in_their_own_bin() -> None:
    values = np.array([1.0, 2.0, np.nan, np.inf, 3.0])
    counts = bin_counts([2.0], values)
    # (-inf, 2), [2, inf), missing
    assert counts.tolist() == [1, 2, 2]


def test_it_flags_a_feature_that_suddenly_goes_missing(baseline: dict) -> None:
    gone = np.full(1000, np.nan)
    assert feature_psi(baseline["features"][0], gone) > 1.0


def test_it_never_returns_nan_or_infinity_for_empty_bins() -> None:
    assert psi([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]) > 0
    assert math.isfinite(psi([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]))
    assert psi([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert math.isfinite(feature_psi({"edges": [], "expected": [0.0, 0.0]}, np.array([])))


def test_it_takes_the_top_class_probability_of_multi_class_outputs() -> None:
    outputs = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], dtype=np.float32)
    assert output_scores(outputs, 2).tolist() == pytest.approx([0.7, 0.5])
    assert output_scores(np.array([0.3, 0.9]), 2).tolist() == pytest.approx([0.3, 0.9])


def test_it_bins_float32_inputs_as_the_baseline_did() -> None:
    # 0.1 is not a float32: the worker sees float32(0.1), the CSV had 0.1.
    values = np.array([0.1] * 50 + [0.2] * 50)
    edges = bin_edges(values)
    float32_counts = bin_counts(edges, values.astype(np.float32))
    assert float32_counts.tolist() == bin_counts(edges, values).tolist()


def test_it_refuses_mismatched_names_and_foreign_json(baseline: dict) -> None:
    with pytest.raises(BaselineError):
        validate_baseline(baseline, ["age", "income"])
    with pytest.raises(BaselineError):
        validate_baseline({"format": 99})
    with pytest.raises(BaselineError):
        build_baseline(np.zeros((3, 2)), np.zeros(3), NAMES, "file")
    with pytest.raises(BaselineError):
        build_baseline(np.zeros((3, 3)), np.zeros(3), NAMES, "guess")


def test_all_columns_binned_at_once_count_what_each_column_binned_alone_counts() -> None:
    rng = np.random.default_rng(12)
    columns = rng.normal(size=(500, 4)).astype(np.float32)
    columns[::7, 1] = np.nan
    columns[::11, 2] = np.inf
    columns[3, 3] = -np.inf
    # Edges of different lengths (a constant feature has fewer), values on the edges too.
    edges = [
        np.array(bin_edges(columns[:, j][np.isfinite(columns[:, j])], bins))
        for j, bins in enumerate((10, 3, 7, 1))
    ]
    columns[5, 0] = edges[0][2]

    together = bin_counts_columns(edges, columns)

    assert together.shape == (4, max(len(e) for e in edges) + 2)
    for j, column_edges in enumerate(edges):
        alone = bin_counts(column_edges, columns[:, j])
        np.testing.assert_array_equal(together[j, : alone.size], alone)
        assert not together[j, alone.size :].any()


def test_psi_of_every_row_at_once_is_the_psi_of_each_row() -> None:
    rng = np.random.default_rng(13)
    expected = [proportions(rng.integers(0, 50, size=size)) for size in (12, 5, 9)]
    counts = np.zeros((3, 12), dtype=np.int64)
    for i, e in enumerate(expected):
        counts[i, : e.size] = rng.integers(0, 50, size=e.size)
    counts[2] = 0  # a feature with no rows yet
    padded = np.zeros((3, 12))
    for i, e in enumerate(expected):
        padded[i, : e.size] = e

    together = psi_rows(padded, counts)

    for i, e in enumerate(expected):
        assert together[i] == pytest.approx(psi(e, proportions(counts[i, : e.size])), rel=1e-12, abs=1e-12)
