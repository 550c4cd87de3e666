"""The in-process limit: the same booster's ``inplace_predict`` on the same rows, one thread."""

from __future__ import annotations

import time

from benchmarks.models import BenchModel

BATCH_SIZES = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)


def measure(model: BenchModel, budget_s: float) -> list[dict[str, float]]:
    """Rows/s and seconds per call at each batch size, repeating calls for about ``budget_s`` each.

    Every size gets at least three calls (the first one is a warm-up and is not timed).
    """
    model.booster.set_param({"nthread": 1})
    points = []
    for size in BATCH_SIZES:
        batch = model.rows[:size]
        model.booster.inplace_predict(batch)
        calls = 0
        start = time.perf_counter()
        while calls < 2 or time.perf_counter() - start < budget_s:
            model.booster.inplace_predict(batch)
            calls += 1
        elapsed = time.perf_counter() - start
        points.append(
            {"batch": size, "calls": calls, "s_per_call": elapsed / calls, "rows_s": size * calls / elapsed}
        )
    return points
