"""Even samples of a job chunk's rows, for the drift monitor."""

from __future__ import annotations

import numpy as np


def even_sample(rows: np.ndarray, outputs: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` of ``rows`` (and the matching ``outputs``), spread evenly from first to last.

    A job chunk's rows arrive together, so "the most recent rows" means
    nothing inside one: an even sample describes the chunk as well as any
    window of it, without the bias of a contiguous slice of sorted input.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if len(rows) <= limit:
        return rows, outputs
    picked = np.linspace(0, len(rows) - 1, limit).round().astype(np.intp)
    return rows[picked], outputs[picked]
