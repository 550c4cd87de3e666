"""Kubernetes exec probes for the worker, which has no HTTP port.

``python -m inference_worker.probe live``  the event loop beat recently
``python -m inference_worker.probe ready`` live, and consuming (not draining)

Deliberately light: it imports neither Celery nor XGBoost, so a probe costs
milliseconds, not a second of imports.
"""

from __future__ import annotations

import sys
import time

from inference_common.settings import env_int

from .config import heartbeat_file, ready_file


def check(kind: str) -> tuple[bool, str]:
    """Return (healthy, reason) for ``live`` or ``ready``."""
    max_age = env_int("WORKER_HEARTBEAT_MAX_AGE_S", 60, minimum=1)
    beat = heartbeat_file()
    try:
        age = time.time() - beat.stat().st_mtime
    except FileNotFoundError:
        return False, f"no heartbeat file {beat}"
    if age > max_age:
        return False, f"last heartbeat {age:.0f}s ago (limit {max_age}s)"
    if kind == "ready" and not ready_file().exists():
        return False, "worker is starting or draining"
    return True, "ok"


def main(argv: list[str]) -> int:
    """Exit 0 when healthy, 1 otherwise (with the reason on stderr)."""
    kind = argv[1] if len(argv) > 1 else "live"
    if kind not in ("live", "ready"):
        print("usage: python -m inference_worker.probe live|ready", file=sys.stderr)
        return 2
    healthy, reason = check(kind)
    if not healthy:
        print(reason, file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
