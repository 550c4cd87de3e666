"""The interleaved rounds: who goes when, what each round keeps, how the report's entry is labelled."""

from __future__ import annotations

from benchmarks.run import PEER_LABELS, _paired_entry, _paired_rounds, _round_order


def test_each_system_goes_first_and_last_equally_often_over_four_rounds() -> None:
    systems = ["platform", "mlserver", "naive"]
    orders = [_round_order(systems, index) for index in range(4)]
    assert orders == [systems, systems[::-1], systems[::-1], systems]
    assert sorted(order[0] for order in orders) == sorted(order[-1] for order in orders)
    # The caller's list is left as it was.
    assert systems == ["platform", "mlserver", "naive"]


def test_rounds_measure_every_system_in_turn_and_keep_what_each_gave() -> None:
    calls: list[tuple[str, int]] = []

    def measure(system: str, index: int) -> dict[str, float]:
        calls.append((system, index))
        return {"rps": float(len(calls))}

    rounds = _paired_rounds(["platform", "mlserver"], 3, measure, "test")
    assert calls == [
        ("platform", 0),
        ("mlserver", 0),
        ("mlserver", 1),
        ("platform", 1),
        ("mlserver", 2),
        ("platform", 2),
    ]
    assert rounds[1] == {
        "order": ["mlserver", "platform"],
        "mlserver": {"rps": 3.0},
        "platform": {"rps": 4.0},
    }


def test_an_entry_names_every_peer_but_not_the_platform() -> None:
    rounds = _paired_rounds(
        ["platform", "mlserver", "mlserver-nobatch"], 1, lambda s, i: {"p99_ms": 1.0}, "t"
    )
    entry = _paired_entry("small", "fixed", rounds)
    assert entry["kind"] == "fixed"
    assert entry["peers"] == {name: PEER_LABELS[name] for name in ("mlserver", "mlserver-nobatch")}
    assert entry["rounds"] is rounds
