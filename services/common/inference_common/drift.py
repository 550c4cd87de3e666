"""Drift baselines and the population stability index (PSI), shared by web and worker.

A *baseline* summarises the data a model version was meant to serve: for
every input feature (by name, in column order) and for the output score, the
bin edges taken from the quantiles of a reference sample and the share of
that sample in each bin. The web tier builds it from training rows or from a
CSV file given to ``register_model --baseline``; a worker that finds none
builds it from the first window of served rows. The worker then bins what
it serves with the same edges and compares the shares with PSI.

Bins are ``(-inf, e0), [e0, e1), ..., [e_last, +inf)`` plus one last bin for
missing values (NaN, which XGBoost treats as missing), so a change in how
often a feature is missing counts as drift too.

The baseline is plain JSON (stored in ``model_versions.baseline``)::

    {"format": 1, "source": "training", "n_rows": 5000, "bins": 10,
     "features": [{"name": "age", "edges": [...], "expected": [...]}, ...],
     "output": {"name": "__output__", "edges": [...], "expected": [...]}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Version of the JSON layout; readers refuse layouts they do not know.
BASELINE_FORMAT = 1
#: The ``feature`` label of the output score's drift.
OUTPUT_FEATURE = "__output__"
#: Where a baseline came from.
SOURCE_TRAINING, SOURCE_FILE, SOURCE_FIRST_WINDOW = "training", "file", "first_window"
SOURCES = (SOURCE_TRAINING, SOURCE_FILE, SOURCE_FIRST_WINDOW)
DEFAULT_BINS = 10
#: Floor for a bin's share: an empty bin would make ln(a / e) infinite.
EPSILON = 1e-4


class BaselineError(ValueError):
    """A baseline that cannot be built or read."""


def bin_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> list[float]:
    """Interior bin edges from the quantiles of the finite ``values``, deduplicated.

    Values are taken as float32 (what the model and the worker see) and the
    edges are actual sample values (``inverted_cdf``), so a float32 value
    equal to an edge falls into the same bin here and in the worker. A
    feature with one dominant value ``c`` gets the edges ``[c, next float32
    above c]``: one bin holds ``c``, and a move either way leaves that bin.
    """
    finite = np.asarray(values, dtype=np.float32)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return []
    quantiles = np.arange(1, bins) / bins
    edges = np.unique(np.quantile(finite, quantiles, method="inverted_cdf").astype(np.float32))
    if edges.size == 1:
        # One value holds every decile (a constant, or a feature that is nearly
        # always 0): split it off from the values above it as well as below.
        edges = np.append(edges, np.nextafter(edges[0], np.float32(np.inf)))
    return [float(edge) for edge in edges]


def bin_counts(edges: Sequence[float] | np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of ``values`` per bin: ``len(edges) + 1`` value bins, then the missing-value bin."""
    column = np.asarray(values, dtype=np.float32).astype(np.float64)
    edge_array = np.asarray(edges, dtype=np.float64)
    finite = np.isfinite(column)
    index = np.full(column.shape, edge_array.size + 1, dtype=np.int64)
    index[finite] = np.searchsorted(edge_array, column[finite], side="right")
    return np.bincount(index, minlength=edge_array.size + 2)


def counts_width(edges: Sequence[np.ndarray]) -> int:
    """Cells per row of :func:`bin_counts_columns`' table (and of expected shares scored against it)."""
    return max((len(e) for e in edges), default=0) + 2


def bin_counts_columns(edges: Sequence[np.ndarray], columns: np.ndarray) -> np.ndarray:
    """:func:`bin_counts` of every column of ``columns`` (n, k) against its own ``edges[j]``, at once.

    Row ``j`` of the ``(k, max edges + 2)`` result holds column ``j``'s counts in
    its first ``len(edges[j]) + 2`` cells (missing values last), zeros after. One
    comparison over all columns instead of a NumPy round per column: a worker
    bins every feature of every chunk it serves (101 columns for a 100-feature model).
    """
    values = np.asarray(columns, dtype=np.float32).astype(np.float64)
    sizes = np.array([len(e) for e in edges], dtype=np.int64)
    width = counts_width(edges)
    # Padded with +inf, which no finite value reaches: the count of edges <= value is
    # searchsorted(..., side="right"), the bin bin_counts gives.
    padded = np.full((len(edges), width - 2), np.inf)
    for j, e in enumerate(edges):
        padded[j, : sizes[j]] = e
    finite = np.isfinite(values)
    comparable = np.where(finite, values, -np.inf)
    index = np.zeros(values.shape, dtype=np.int64)
    for k in range(width - 2):  # a few edges, many values: one 2-D comparison per edge
        index += padded[:, k] <= comparable
    index = np.where(finite, index, sizes + 1)
    flat = (index + np.arange(len(edges)) * width).ravel()
    return np.bincount(flat, minlength=len(edges) * width).reshape(len(edges), width)


def psi_rows(expected: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """:func:`psi` of each row of ``counts`` (shares taken per row) against the same row of ``expected``.

    Both ``(k, width)``, zero-padded alike: a padded bin is floored on both sides and adds nothing.
    """
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    actual = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(actual, EPSILON)
    return np.sum((a - e) * np.log(a / e), axis=1)


def proportions(counts: np.ndarray) -> np.ndarray:
    """Counts as shares of their total (all zeros when there are none)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Population stability index: ``sum((a - e) * ln(a / e))`` over bins, shares floored at EPSILON.

    Never NaN: both sides are floored, so an empty bin contributes a finite
    (and, when both are empty, zero) amount.
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    if e.shape != a.shape:
        raise ValueError(f"expected {e.shape[0]} bins, got {a.shape[0]}")
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(summary: Mapping[str, Any], values: np.ndarray) -> float:
    """PSI of observed ``values`` against one feature (or output) summary of a baseline."""
    return psi(summary["expected"], proportions(bin_counts(summary["edges"], values)))


def output_scores(outputs: np.ndarray, n_rows: int) -> np.ndarray:
    """One score per row: the output value, or the top class probability for 2-D outputs."""
    array = np.asarray(outputs, dtype=np.float32).reshape(n_rows, -1)
    return array[:, 0] if array.shape[1] == 1 else array.max(axis=1)


def summarise(name: str, values: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The baseline entry of one column: its name, edges and expected shares."""
    edges = bin_edges(values, bins)
    expected = proportions(bin_counts(edges, values))
    return {"name": name, "edges": edges, "expected": [round(float(share), 6) for share in expected]}


def build_baseline(
    matrix: np.ndarray,
    outputs: np.ndarray,
    feature_names: Sequence[str],
    source: str,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """A baseline from reference rows (n, n_features) and the model's outputs for them."""
    if source not in SOURCES:
        raise BaselineError(f"unknown baseline source {source!r}; expected one of {', '.join(SOURCES)}")
    rows = np.asarray(matrix, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise BaselineError("a baseline needs at least one row of features")
    if rows.shape[1] != len(feature_names):
        raise BaselineError(f"{rows.shape[1]} columns but {len(feature_names)} feature names")
    n_rows = int(rows.shape[0])
    return {
        "format": BASELINE_FORMAT,
        "source": source,
        "n_rows": n_rows,
        "bins": bins,
        "features": [summarise(str(name), rows[:, i], bins) for i, name in enumerate(feature_names)],
        "output": summarise(OUTPUT_FEATURE, output_scores(outputs, n_rows), bins),
    }


def validate_baseline(data: Any, feature_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Return ``data`` if it is a usable baseline (for ``feature_names`` if given); else BaselineError."""
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise BaselineError(f"not a format {BASELINE_FORMAT} drift baseline")
    entries = [*data.get("features", []), data.get("output")]
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise BaselineError("every baseline entry needs a name")
        edges, expected = entry.get("edges"), entry.get("expected")
        if not isinstance(edges, list) or not isinstance(expected, list) or len(expected) != len(edges) + 2:
            raise BaselineError(f"baseline entry {entry['name']!r}: edges and shares do not match")
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in [*edges, *expected]):
            raise BaselineError(f"baseline entry {entry['name']!r}: edges and shares must be finite numbers")
    if feature_names is not None:
        names = [entry["name"] for entry in data["features"]]
        if names != list(feature_names):
            raise BaselineError("the baseline's features are not the model's features, in order")
    return data
