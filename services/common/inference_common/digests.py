"""Digests of model inputs and outputs, as the audit log stores them.

Models see float32, so arrays are hashed as contiguous float32 bytes: the
same numbers give the same digest whatever dtype a request decoded to
(JSON integers, float64, a v2 FP16 tensor).
"""

from __future__ import annotations

import hashlib

import numpy as np


def as_float32(array: np.ndarray) -> np.ndarray:
    """``array`` as a C-contiguous float32 array (no copy when it already is one)."""
    return np.ascontiguousarray(array, dtype=np.float32)


def array_digest(array: np.ndarray) -> str:
    """SHA-256 (hex) of an array's float32 bytes: identifies inputs or outputs without storing them."""
    return hashlib.sha256(as_float32(array)).hexdigest()
