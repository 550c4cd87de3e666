"""Choose the XGBoost device (``WORKER_DEVICE=auto|cpu|cuda``) without touching CUDA.

CUDA must never be initialised in the Celery parent process: a forked child
of a process that initialised CUDA fails with "Cannot re-initialize CUDA in
forked subprocess". The probe therefore runs in a short-lived subprocess and
the children initialise CUDA themselves, after fork.
"""

from __future__ import annotations

import logging
import subprocess
import sys

logger = logging.getLogger(__name__)

# Counts CUDA devices through the driver API; prints 0 when there is no driver.
_PROBE = """
import ctypes
try:
    cuda = ctypes.CDLL("libcuda.so.1")
except OSError:
    print(0); raise SystemExit
count = ctypes.c_int(0)
ok = cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0
print(count.value if ok else 0)
"""


class DeviceUnavailableError(RuntimeError):
    """``WORKER_DEVICE=cuda`` was requested but no usable GPU is present."""


def cuda_device_count() -> int:
    """Number of CUDA devices visible to this process (probed in a subprocess)."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
        return int(result.stdout.strip() or 0)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


def xgboost_has_cuda() -> bool:
    """Whether the installed XGBoost build was compiled with CUDA support."""
    import xgboost

    return bool(xgboost.build_info().get("USE_CUDA"))


def resolve_device(requested: str) -> str:
    """Map ``auto|cpu|cuda`` to the device XGBoost will use, failing loudly for cuda."""
    if requested == "cpu":
        return "cpu"
    usable = xgboost_has_cuda() and cuda_device_count() > 0
    if requested == "cuda" and not usable:
        raise DeviceUnavailableError(
            "WORKER_DEVICE=cuda but no CUDA device is usable "
            f"(xgboost built with CUDA: {xgboost_has_cuda()}, devices: {cuda_device_count()})"
        )
    return "cuda" if usable else "cpu"
