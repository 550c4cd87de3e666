"""Polling with a deadline: black-box tests wait for conditions, never fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    """Call ``fetch`` until ``done(result)``; fail after ``timeout`` seconds (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    result = fetch()
    while not done(result):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s; last result: {result!r}"[:2000])
        time.sleep(0.25)
        result = fetch()
    return result
