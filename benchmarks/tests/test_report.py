"""The report's interleaved comparison: one ratio per round, the median of the measured ones."""

from __future__ import annotations

from benchmarks.report import paired_section


def _results(*rounds: tuple[float, float]) -> dict:
    return {
        "paired": [
            {
                "model": "small",
                "platform": "v1 batching on",
                "peer": "mlserver v2 batching on",
                "rounds": [{"platform": p, "mlserver": m, "first": "platform"} for p, m in rounds],
            }
        ]
    }


def test_each_round_gives_a_ratio_and_the_median_is_reported() -> None:
    lines = paired_section(_results((500, 1000), (300, 1000), (900, 1000)))
    row = next(line for line in lines if line.startswith("| small |"))
    assert "500 / 1,000, 300 / 1,000, 900 / 1,000" in row
    assert "| 0.50, 0.30, 0.90 |" in row
    assert row.endswith("| **0.50** |")


def test_a_round_without_peer_throughput_is_shown_but_not_in_the_median() -> None:
    row = next(
        line for line in paired_section(_results((400, 1000), (400, 0))) if line.startswith("| small |")
    )
    assert "| 0.40, n/a |" in row
    assert row.endswith("| **0.40** |")


def test_no_interleaved_run_means_no_section() -> None:
    assert paired_section({"paired": []}) == []
    assert paired_section({}) == []
