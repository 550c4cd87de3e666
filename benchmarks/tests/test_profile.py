"""CPU accounting and the profile tables the report prints."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from benchmarks.profile import CpuMeter, process_tree, top_functions


def test_inclusive_and_self_shares_come_from_the_collapsed_stacks(tmp_path: Path) -> None:
    folded = tmp_path / "api.folded"
    folded.write_text(
        "main (app.py:1);handle (server.py:10);publish (kombu/messaging.py:5) 6\n"
        "main (app.py:1);handle (server.py:10);decode (decoding.py:3) 3\n"
        "main (app.py:1);idle (server.py:20) 1\n"
    )
    top = top_functions(folded)
    assert top["samples"] == 10
    inclusive = dict(top["inclusive"])
    # main and handle are on (nearly) every stack: the trunk, left out.
    assert "main (app.py)" not in inclusive
    assert "handle (server.py)" not in inclusive
    assert inclusive["publish (messaging.py)"] == pytest.approx(0.6)
    assert inclusive["decode (decoding.py)"] == pytest.approx(0.3)
    assert dict(top_functions(folded, trunk=1.0)["inclusive"])["handle (server.py)"] == pytest.approx(0.9)
    assert dict(top["self"])["decode (decoding.py)"] == pytest.approx(0.3)


def test_the_meter_charges_cpu_to_the_process_that_burned_it() -> None:
    mine = process_tree(os.getpid())
    assert mine[0] == os.getpid()
    meter = CpuMeter({"me": mine, "nobody": [2**22 + 12345]})
    meter.start()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    used = meter.stop(requests=100, elapsed_s=0.3)
    assert used["me"]["ms_per_request"] == pytest.approx(3.0, rel=0.5)
    assert used["nobody"]["ms_per_request"] == 0.0
