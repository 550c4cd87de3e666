"""Fixtures for the fuzzing suite: the integration suite's real stack, plus a key without a rate limit.

The fixtures are imported from ``tests/integration/conftest.py`` rather than
copied, so the fuzzed api runs exactly as in the integration suite: its own
PostgreSQL database, RabbitMQ vhost, registered models and a real worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# Re-exported fixtures: pytest finds them by name in this conftest.
from integration.conftest import infra, models, otlp, run_id  # noqa: F401
from support.stack import Stack, manage


@pytest.fixture(scope="session")
def fuzz_key(infra) -> str:  # noqa: F811
    """A key with every scope and rate limit 0 (unlimited): the fuzzer must not be throttled."""
    return manage(infra.env, "create_api_key", "fuzz", "--scopes", "predict,jobs", "--rate-limit", "0")


@pytest.fixture(scope="session")
def fuzz_stack(infra, models, run_id) -> Iterator[Stack]:  # noqa: F811
    """An api + worker of the fuzzing suite's own, on real RabbitMQ and PostgreSQL."""
    stack = Stack(env=infra.env, logs=infra.logs, prefix=f"fuzz-{run_id}")
    try:
        stack.start_worker(concurrency=2)
        stack.start_api(workers=1)
        yield stack
    finally:
        stack.stop()
