"""Fixtures of the chart suite (helpers live in chart.rendering)."""

from __future__ import annotations

import pytest

from chart.rendering import PROFILES, Manifests, render


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """Each ci/ values profile in turn."""
    return request.param


@pytest.fixture
def manifests(profile: str) -> Manifests:
    """The chart rendered with the profile."""
    return render(profile)
