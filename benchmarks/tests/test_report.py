"""The report's interleaved comparisons: one ratio per round and peer, the median of the measured ones."""

from __future__ import annotations

import math

from benchmarks.report import mlserver_pool_section, paired_medians, paired_section


def _saturation(*rounds: tuple[float, float, float]) -> dict:
    return {
        "model": "small",
        "kind": "saturation",
        "platform": "v1 batching on",
        "peers": {"mlserver": "mlserver v2 batching on", "naive": "naive v1"},
        "rounds": [
            {
                "order": ["platform", "mlserver", "naive"],
                "platform": {"rps": p},
                "mlserver": {"rps": m},
                "naive": {"rps": n},
            }
            for p, m, n in rounds
        ],
    }


def _fixed(*rounds: tuple[float, float, float, float]) -> dict:
    """Rounds of (platform p50, platform p99, peer p50, peer p99)."""
    return {
        "model": "large",
        "kind": "fixed",
        "rps": 50.0,
        "platform": "v1 batching on",
        "peers": {"mlserver-nobatch": "mlserver v2 batching off"},
        "rounds": [
            {
                "order": ["platform", "mlserver-nobatch"],
                "platform": {"p50_ms": p50, "p99_ms": p99, "errors": 0, "dropped": 1},
                "mlserver-nobatch": {"p50_ms": q50, "p99_ms": q99, "errors": 2, "dropped": 0},
            }
            for p50, p99, q50, q99 in rounds
        ],
    }


def _row(lines: list[str], start: str, peer: str) -> str:
    return next(line for line in lines if line.startswith(start) and f"| {peer} |" in line)


def test_each_saturation_round_gives_a_ratio_per_peer_and_the_median_is_reported() -> None:
    entry = _saturation((500, 1000, 250), (300, 1000, 600), (900, 1000, 300))
    lines = paired_section({"paired": [entry]})
    mlserver = _row(lines, "| small |", "mlserver v2 batching on")
    assert "500 / 1,000, 300 / 1,000, 900 / 1,000" in mlserver
    assert "| 0.50, 0.30, 0.90 |" in mlserver
    assert mlserver.endswith("| **0.50** |")
    naive = _row(lines, "| small |", "naive v1")
    assert "| 2.00, 0.50, 3.00 |" in naive
    assert naive.endswith("| **2.00** |")
    assert paired_medians(entry, "naive") == {"throughput": 2.0}


def test_a_round_without_peer_throughput_is_shown_but_not_in_the_median() -> None:
    lines = paired_section({"paired": [_saturation((400, 1000, 100), (400, 0, 100))]})
    row = _row(lines, "| small |", "mlserver v2 batching on")
    assert "| 0.40, n/a |" in row
    assert row.endswith("| **0.40** |")


def test_fixed_load_rounds_give_latency_factors_and_count_failures() -> None:
    entry = _fixed(
        (10.0, 20.0, 5.0, 5.0), (12.0, 30.0, 4.0, 10.0), (9.0, 16.0, 3.0, 8.0), (8.0, 9.0, 4.0, 3.0)
    )
    lines = paired_section({"paired": [entry]})
    assert "## Latency at 50 req/s, interleaved" in lines
    row = _row(lines, "| large |", "mlserver v2 batching off")
    assert "20.0 / 5.0, 30.0 / 10.0, 16.0 / 8.0, 9.0 / 3.0" in row
    assert "| 4.00, 3.00, 2.00, 3.00 |" in row
    # p50 factors 2, 3, 3, 2 -> 2.5; p99 factors 4, 3, 2, 3 -> 3; 1 dropped + 2 errors per round.
    assert row.endswith("| **2.50** | **3.00** | 12 |")
    medians = paired_medians(entry, "mlserver-nobatch")
    assert medians == {"p50": 2.5, "p99": 3.0}


def test_a_peer_point_without_answers_is_left_out_of_the_latency_median() -> None:
    entry = _fixed((10.0, 20.0, 5.0, 5.0), (10.0, 20.0, math.nan, math.nan))
    assert paired_medians(entry, "mlserver-nobatch") == {"p50": 2.0, "p99": 4.0}


def test_no_interleaved_run_means_no_section() -> None:
    assert paired_section({"paired": []}) == []
    assert paired_section({}) == []


def _point(api: str, batching: str, mode: str, **figures: float) -> dict:
    return {"system": "mlserver", "model": "small", "api": api, "batching": batching, "mode": mode, **figures}


def test_mlserver_with_a_pool_is_set_against_mlserver_without() -> None:
    results = {
        "settings": {"fixed_rps": 50.0},
        "models": {"small": {}},
        "points": [
            _point("v2", "on", "closed", achieved_rps=1000.0),
            _point("v2", "on", "closed", achieved_rps=1000.0),
            _point("v2", "on", "open", offered_rps=50.0, p50_ms=4.0, p99_ms=6.0),
            _point("v2 parallel workers 2", "on", "closed", achieved_rps=800.0),
            _point("v2 parallel workers 2", "on", "closed", achieved_rps=800.0),
            _point("v2 parallel workers 2", "on", "open", offered_rps=50.0, p50_ms=5.5, p99_ms=8.0),
            # A many-rows point of the same server is not a configuration of this table.
            _point("v2 json x1000", "off", "closed", achieved_rps=50.0),
        ],
    }
    lines = mlserver_pool_section(results)
    rows = [line for line in lines if line.startswith("| small |")]
    assert rows == [
        "| small | on | 0 | 1,000.0 +- 0.0 | 4.0 ms | 6.0 ms |",
        "| small | on | 2 | 800.0 +- 0.0 | 5.5 ms | 8.0 ms |",
    ]


def test_no_pool_points_means_no_mlserver_section() -> None:
    results = {
        "settings": {"fixed_rps": 50.0},
        "models": {"small": {}},
        "points": [_point("v2", "on", "closed")],
    }
    assert mlserver_pool_section(results) == []
