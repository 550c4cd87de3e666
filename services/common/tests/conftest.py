"""Unit tests of the shared package never export telemetry."""

from __future__ import annotations

import os

# Set before anything configures tracing: unit tests never export spans.
os.environ["OTEL_SDK_DISABLED"] = "true"
os.environ["OTEL_TRACES_EXPORTER"] = "none"
